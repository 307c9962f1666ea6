"""`make bench`: one interleaved run on loopback comparing the targets in bench/targets.py.

    .venv/bin/python -m bench.run            # ~5 minutes
    .venv/bin/python -m bench.run --quick    # ~1.5 minutes
    .venv/bin/python -m bench.run --only direct,passthrough
    .venv/bin/python -m bench.run --policy aifw-pii=policies/pii.yaml

The fake provider, each proxy and the load generator are separate processes. Every round runs
every workload against every target (the target order rotates each round), so drift on a busy
machine lands on all targets alike. The time budget is split over the segments, so adding
targets keeps the run bounded. Writes the Markdown report to stdout and bench/results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench import procs
from bench.report import Pool, Start, issue_summary, start_table, table, target_checks
from bench.targets import AIFW, DIRECT, PASSTHROUGH, Target, aifw_target, before_targets, bench_targets
from bench.workloads import AUTH, BENCH_WORKLOADS, PATH, WORKLOADS, Workload

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MAX_REQUESTS_PER_SEGMENT = 50_000


class LoadGen:
    def __init__(self, log_dir: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.loadgen"], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=(log_dir / "loadgen.log").open("w"))

    def run(self, url: str, workload: Workload, duration: float) -> dict:
        assert self.proc.stdin and self.proc.stdout
        cmd = {"url": url, "body": workload.body(), "headers": workload.headers, "stream": workload.stream,
               "connections": workload.connections, "duration": duration,
               "max_requests": MAX_REQUESTS_PER_SEGMENT}
        self.proc.stdin.write(orjson.dumps(cmd).decode() + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator died (see bench/results/logs/loadgen.log)")
        return orjson.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _fill(value: str, subs: dict[str, str]) -> str:
    for key, sub in subs.items():
        value = value.replace("{" + key + "}", sub)
    return value


def start_targets(targets: list[Target], upstream: procs.Service, log_dir: Path,
                  notes: list[str]) -> dict[str, procs.Service]:
    running: dict[str, procs.Service] = {}
    for target in targets:
        if target.command is None:
            running[target.name] = procs.Service(target.name, upstream.url, None, None)
            continue
        port = procs.free_port()
        subs = {"python": sys.executable, "port": str(port), "upstream": upstream.url}
        service = procs.start(target.name, [_fill(c, subs) for c in target.command],
                              {k: _fill(v, subs) for k, v in target.env.items()}, port, log_dir, ROOT)
        problem = procs.wait_ready(service, "/v1/models", AUTH)
        if problem:
            tail = service.log_tail()
            service.stop()
            notes.append(f"- target `{target.name}` skipped: {problem}. Command: "
                         f"`{' '.join(target.command)}`." + (f" Log tail:\n\n```\n{tail}\n```" if tail else ""))
            print(f"[bench] {target.name}: {problem}", file=sys.stderr)
            continue
        running[target.name] = service
    return running


def run(targets: list[Target], quick: bool, budget: float | None, rounds: int | None,
        workloads: tuple[Workload, ...] = WORKLOADS) -> str:
    rounds = rounds or (2 if quick else 4)
    budget = budget or (40.0 if quick else 210.0)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    # Bytecode as an installed package has it: a checkout run with PYTHONDONTWRITEBYTECODE would
    # otherwise compile every module at each start, and the start times would measure that.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "proxy", "bench"], cwd=ROOT,
                   stdout=subprocess.DEVNULL, check=False,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    up_port = procs.free_port()
    upstream = procs.start("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port)], {},
                           up_port, log_dir, ROOT)
    services: dict[str, procs.Service] = {}
    loadgen = None
    try:
        problem = procs.wait_ready(upstream, "/v1/models", AUTH)
        if problem:
            raise RuntimeError(f"fake upstream did not start: {problem}\n{upstream.log_tail()}")
        services = start_targets(targets, upstream, log_dir, notes)
        loadgen = LoadGen(log_dir)
        names = list(services)
        duration = min(3.0, max(0.3, budget / (rounds * len(workloads) * len(names))))
        print(f"[bench] targets {names}, {rounds} rounds x {len(workloads)} workloads, "
              f"{duration:.2f}s per segment", file=sys.stderr)

        # Warm-up: one short unrecorded segment per target and workload (lazy imports, pools),
        # so round 1 is not penalised against later rounds.
        for w in workloads:
            for name in names:
                loadgen.run(services[name].url + PATH, w, 0.2)

        pools: dict[str, dict[str, Pool]] = {n: {} for n in names}
        started = time.monotonic()
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for w in workloads:
                for name in order:
                    svc = services[name]
                    cpu0 = procs.cpu_seconds(svc.proc.pid) if svc.proc else None
                    result = loadgen.run(svc.url + PATH, w, duration)
                    cpu = procs.cpu_seconds(svc.proc.pid) - cpu0 if svc.proc and cpu0 is not None else None
                    pools[name].setdefault(w.name, Pool()).add(result, cpu)
            print(f"[bench] round {r + 1}/{rounds} done ({time.monotonic() - started:.0f}s)", file=sys.stderr)
        upstream_cpu = procs.cpu_seconds(upstream.proc.pid) if upstream.proc else 0.0
        starts = {name: Start(svc.ready_seconds, svc.rss_ready_mib,
                              procs.rss_mib(svc.proc.pid) if svc.proc else None)
                  for name, svc in services.items() if svc.proc is not None}
    finally:
        if loadgen:
            loadgen.close()
        for svc in services.values():
            svc.stop()
        upstream.stop()

    report = render(pools, names, rounds, duration, quick, notes, upstream_cpu, workloads, starts)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench-{stamp}.md").write_text(report)
    (RESULTS / "latest.md").write_text(report)
    return report


def render(pools: dict[str, dict[str, Pool]], names: list[str], rounds: int, duration: float, quick: bool,
           notes: list[str], upstream_cpu: float, workloads: tuple[Workload, ...] = WORKLOADS,
           starts: dict[str, Start] | None = None) -> str:
    streamed = {w.name for w in workloads if w.stream}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [f"# aifw benchmark ({'quick' if quick else 'full'}, {datetime.now():%Y-%m-%d %H:%M})", "",
           f"Loopback, {rounds} interleaved rounds, {duration:.2f}s per segment. Bodies "
           f"(bench/bodies.py): `chat1k` ~1 KB chat, `conv20` a ~6 KB 20-turn conversation, `rag4k` "
           f"a ~4 KB retrieval prompt with a tool result; each request carries a new text (its "
           f"newest turn; in `rag4k` the question and passages too); `stream50` streams the 1 KB "
           f"chat's answer in 50 chunks. `÷ pass` = ratio to the bare aiohttp pass-through; `+… vs "
           f"direct` = added over calling the fake provider directly. CPU = utime+stime of the proxy "
           f"process (from /proc) per request. Load average at the end: {load} on {os.cpu_count()} CPUs.", ""]
    summary = issue_summary(pools, starts or {})
    if summary:
        out += ["## Summary (issue 14)", "", summary, ""]
    out += ["## Every workload", "", table(pools, [w.name for w in workloads], streamed), ""]
    if starts:
        out += ["## Start", "", start_table(starts), ""]
    subjects = [n for n in names if n not in (DIRECT, PASSTHROUGH)]
    checks = [line for s in subjects for line in target_checks(pools, s)]
    if checks:
        out += ["## Targets", "", *checks, ""]
    elif AIFW not in names:
        out += ["## Targets", "", f"- not evaluated: no `{AIFW}` target ran.", ""]
    total = sum(p.sent for per in pools.values() for p in per.values())
    out += [f"Fake provider CPU over the whole run: {upstream_cpu:.1f}s for ~{total} requests. "
            f"Load average at the end: {load} on {os.cpu_count()} CPUs (a busy machine inflates "
            f"every extra process hop, so compare aifw with the pass-through first)."]
    if notes:
        out += ["", "## Notes", "", *notes]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None, targets: list[Target] | None = None,
         workloads: tuple[Workload, ...] = BENCH_WORKLOADS) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="about a minute instead of about five")
    parser.add_argument("--budget", type=float, help="seconds of measured load in total")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 4, quick 2)")
    parser.add_argument("--only", help="comma list of target names to run")
    parser.add_argument("--policy", action="append", default=[], metavar="NAME=PATH",
                        help="add an aifw target running another policy file")
    parser.add_argument("--before", metavar="DIR",
                        help="also run the aifw targets with the code checked out in DIR "
                             "(git archive <commit> | tar -x -C DIR): before and after in one run")
    parser.add_argument("--workloads", help="comma list of workload names or name prefixes "
                                            "(e.g. chat1k for chat1k c=1/16/64)")
    args = parser.parse_args(argv)
    if args.workloads:
        prefixes = tuple(args.workloads.split(","))
        workloads = tuple(w for w in workloads if w.name.startswith(prefixes))
    chosen = list(targets) if targets is not None else bench_targets()
    if args.before:
        chosen += before_targets(os.path.abspath(args.before))
    for spec in args.policy:
        name, _, path = spec.partition("=")
        chosen.append(aifw_target(name, path))
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [t for t in chosen if t.name in wanted]
    if DIRECT not in {t.name for t in chosen}:
        chosen.insert(0, Target(DIRECT, None))  # every "added" number needs the direct baseline
    print(run(chosen, args.quick, args.budget, args.rounds, workloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
