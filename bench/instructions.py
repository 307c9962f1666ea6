"""Instructions per request, counted by valgrind's callgrind: a figure that does not move with the
load on a shared machine (CPU time swings by tens of percent there; instruction counts by <1%).

    .venv/bin/python -m bench.instructions                     # pass-through, no-scan, default, every guard
    .venv/bin/python -m bench.instructions --only passthrough,aifw-noscan --requests 100
    .venv/bin/python -m bench.instructions --keep              # keep the callgrind files (callgrind_annotate)
    .venv/bin/python -m bench.instructions --only passthrough --policy aifw-x=my.yaml   # another policy
    .venv/bin/python -m bench.instructions --before /tmp/old   # and the aifw targets of that checkout

Each target runs alone under ``valgrind --tool=callgrind --instr-atstart=no`` (the fake provider
and the load generator run natively, outside it). After ``--warmup`` requests (lazy imports,
pools, caches, the tokenizer loaded in the background: the target is left to go idle first),
instrumentation is switched on for a window with no request (the idle baseline: timers, the
audit flush thread), then for ``--requests`` requests of the chat1k body (bench/bodies.py) on
``--connections`` connections; the idle rate times the window's length is subtracted. Every
thread of the target is counted (the audit writer thread too). The result is instructions per
request and the ratio to the bare aiohttp pass-through (bench/passthrough.py) measured in the
same run. All targets, the pass-through too, run on asyncio's own event loop, or all on uvloop
with ``--loop uvloop`` (as ``aifw serve`` does when uvloop is installed), so the ratio compares
like with like.

Instructions are not time (a cache miss costs more than an add), but on one interpreter and one
machine they track CPU time per request closely, and a change of 1% is visible in one run.
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from bench import procs
from bench.bodies import BODIES, body
from bench.run import RESULTS, ROOT
from bench.targets import before_targets
from bench.workloads import AUTH, PATH

PASSTHROUGH = "passthrough"
TARGETS = {   # name -> (command after the interpreter, policy env)
    PASSTHROUGH: ("-m", "bench.passthrough", "--port", "{port}", "--upstream", "{upstream}", "--loop", "{loop}"),
    "aifw-noscan": ("-m", "proxy", "serve", "--policy", "bench/policies/noscan.yaml", "--port", "{port}"),
    "aifw-default": ("-m", "proxy", "serve", "--policy", "policies/default.yaml", "--port", "{port}"),
    "aifw-all": ("-m", "proxy", "serve", "--policy", "bench/policies/all-guards.yaml", "--port", "{port}"),
}
IDLE_SECONDS = 3.0


def _callgrind(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _dump_total(pid: int, out_dir: Path) -> int:
    """Dump the counters since the last zeroing; the instructions (Ir) they add up to."""
    before = set(glob.glob(str(out_dir / f"callgrind.out.{pid}.*")))
    _callgrind(pid, "--dump")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(glob.glob(str(out_dir / f"callgrind.out.{pid}.*"))) - before
        for path in new:
            for line in Path(path).read_text(errors="replace").splitlines():
                # "totals:", not "summary:" (which stays 0 when instrumentation starts off)
                if line.startswith("totals:"):
                    return int(line.split()[1])
        time.sleep(0.1)
    raise RuntimeError(f"callgrind wrote no dump for pid {pid}")


def _window(pid: int, out_dir: Path, work) -> tuple[int, float]:
    """(instructions, seconds) of the target while ``work()`` runs with instrumentation on."""
    _callgrind(pid, "--zero")
    _callgrind(pid, "--instr=on")
    t0 = time.monotonic()
    try:
        work()
    finally:
        seconds = time.monotonic() - t0
        _callgrind(pid, "--instr=off")
    return _dump_total(pid, out_dir), seconds


def _wait_idle(pid: int, quiet: float = 2.0, timeout: float = 600.0) -> None:
    """Until the target used almost no CPU for ``quiet`` seconds (background loads done)."""
    deadline = time.monotonic() + timeout
    last = procs.cpu_seconds(pid)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = procs.cpu_seconds(pid)
        if now - last > 0.05:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return
        last = now
    raise RuntimeError("the target did not go idle")


class Client:
    """The load generator (bench/loadgen.py) in its own process, asked for a number of requests."""

    def __init__(self, log: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"))

    def send(self, url: str, payload: str, connections: int, requests: int) -> int:
        """``requests`` requests (at least one per connection); how many were sent, all answered 200."""
        cmd = {"url": url, "body": payload, "headers": AUTH, "stream": False, "connections": connections,
               "duration": 3600.0, "max_requests": max(requests - connections, 0)}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(orjson.dumps(cmd).decode() + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator died (see bench/results/logs/instructions-loadgen.log)")
        result = orjson.loads(line)
        if result["errors"]:
            raise RuntimeError(f"{result['errors']} requests failed")
        return result["count"] + result["warmup"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)


def _quiet_port() -> int:
    """A free port below the ephemeral range: a target under valgrind takes many seconds to
    listen, and a port the kernel handed out (free_port) could meanwhile go to a process of
    someone else's test run, whose answers would then pass for the target's."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return procs.free_port()


def measure(name: str, upstream: str, args, out_dir: Path, client: Client) -> dict:
    port = _quiet_port()
    cmd = [c.replace("{port}", str(port)).replace("{upstream}", upstream).replace("{loop}", args.loop)
           for c in args.targets[name]]
    env = {"AIFW_UPSTREAM_URL": upstream + "/v1", "AIFW_AUDIT_DIR": str(RESULTS / f"var-instr-{name}"),
           "AIFW_EVENT_LOOP": args.loop}
    shutil.rmtree(env["AIFW_AUDIT_DIR"], ignore_errors=True)
    if "--policy" in cmd:
        # compiled rule sets into the disk cache (proxy/precompiled.py) natively first: compiled
        # under valgrind, the rule vetting's time bound would refuse slow-looking patterns
        aifw = cmd[:cmd.index("serve")]        # "-m proxy", or a checkout's launcher (--before)
        subprocess.run([sys.executable, *aifw, "policy", "check", cmd[cmd.index("--policy") + 1]],
                       cwd=ROOT, env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
    service = procs.start(f"instructions-{name}", [*valgrind, sys.executable, *cmd], env, port,
                          RESULTS / "logs", ROOT)
    try:
        problem = procs.wait_ready(service, "/v1/models", AUTH, timeout=600)
        assert problem is None, f"{name}: {problem}\n{service.log_tail()}"
        pid = service.proc.pid
        url = service.url + PATH
        payload = body(BODIES[args.body])
        client.send(url, payload, args.connections, args.warmup)
        _wait_idle(pid)
        idle, idle_s = _window(pid, out_dir, lambda: time.sleep(IDLE_SECONDS))
        sent = 0

        def work() -> None:
            nonlocal sent
            sent = client.send(url, payload, args.connections, args.requests)
        total, seconds = _window(pid, out_dir, work)
        per_request = (total - idle / idle_s * seconds) / sent
        return {"target": name, "requests": sent, "instructions": total, "seconds": seconds,
                "idle_per_s": idle / idle_s, "per_request": per_request}
    finally:
        service.stop()


def time_bounded(audit_dir: str) -> int:
    """Records of the run that went partly uninspected: under valgrind a scan can run past its
    wall-clock time bound (proxy/detection), and an exchange cut short that way, and the later
    ones that then miss the scan cache, make the count meaningless."""
    n = 0
    for path in glob.glob(os.path.join(audit_dir, "*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                if b'"t":"request"' in line and b'"uninspected":[]' not in line:
                    n += 1
    return n


def report(rows: list[dict], args) -> str:
    base = next((r["per_request"] for r in rows if r["target"] == PASSTHROUGH), None)
    lines = [f"Instructions per request (callgrind), body {args.body}, {args.connections} connection(s), "
             f"{args.warmup} warm-up + {args.requests} measured requests, event loop {args.loop}; "
             f"load average {os.getloadavg()[0]:.1f}",
             "",
             "| target | instructions / request | × pass-through | idle instructions / s |",
             "|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['per_request'] / base:.2f}" if base else "–"
        lines.append(f"| {r['target']} | {r['per_request'] / 1e6:.3f} M | {ratio} | {r['idle_per_s'] / 1e3:.0f} k |")
    spoiled = [f"{r['target']} ({r['uninspected']})" for r in rows if r.get("uninspected")]
    if spoiled:
        lines += ["", "**Not comparable**: exchanges recorded as partly uninspected (a scan past its time "
                  "bound under valgrind; run again on a quieter machine): " + ", ".join(spoiled)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated: " + ", ".join(TARGETS))
    parser.add_argument("--body", default="chat1k", choices=sorted(BODIES))
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--keep", action="store_true", help="keep the callgrind files in bench/results/callgrind")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=PATH",
                        help="also measure aifw with this policy file (repeatable)")
    parser.add_argument("--before", metavar="DIR", help="also measure the aifw targets of the code checked "
                        "out in DIR (git archive <commit> | tar -x -C DIR), named …@before")
    args = parser.parse_args(argv)
    args.targets = dict(TARGETS)
    befores = before_targets(os.path.abspath(args.before)) if args.before else []
    for target in befores:
        args.targets[target.name] = target.command[1:]      # without "{python}": valgrind runs it
    for item in args.policy:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"--policy wants NAME=PATH, got {item!r}")
        args.targets[name] = ("-m", "proxy", "serve", "--policy", path, "--port", "{port}")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench.instructions needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    names = ([n for n in args.only.split(",") if n] + [p.partition("=")[0] for p in args.policy]
             + [t.name for t in befores])
    unknown = set(names) - set(args.targets)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    out_dir = RESULTS / "callgrind"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    up_port = procs.free_port()
    upstream = procs.start("instructions-upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port)],
                           {}, up_port, log_dir, ROOT)
    client = None
    rows = []
    try:
        assert procs.wait_ready(upstream, "/v1/models", AUTH) is None, upstream.log_tail()
        client = Client(log_dir / "instructions-loadgen.log")
        for name in names:
            row = measure(name, upstream.url, args, out_dir, client)
            row["uninspected"] = time_bounded(str(RESULTS / f"var-instr-{name}"))
            print(f"[instructions] {name}: {row['per_request'] / 1e6:.3f} M/request "
                  f"({row['requests']} requests in {row['seconds']:.1f}s)", file=sys.stderr)
            rows.append(row)
    finally:
        if client:
            client.close()
        upstream.stop()
        if not args.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    print(report(rows, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
