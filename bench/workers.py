"""Does `aifw serve --workers 2` use the second core? req/s of one and two workers with
`policies/default.yaml` (issue 14: ≥ 1.7× on this 2-core machine), the bare pass-through in the
same run for reference.

    .venv/bin/python -m bench.workers                 # ~3 minutes; `make bench-workers`
    .venv/bin/python -m bench.workers --rounds 3 --seconds 4 --connections 16

What makes this measurable on two cores: the load generator is wrk (C, ~5 µs of CPU per
request, bench/wrk.py) and the fake provider is nginx answering a fixed chat completion
(bench/nginx_upstream.py), where bench.run's Python load generator and Python fake provider
each cost a good part of what the proxy costs and so take the core a second worker needs.
Every request still carries a never-judged user turn (bench/bodies.py's ``#REQ#``) and every
answer a never-judged text (nginx's ``$request_id``).

Rounds alternate the target order. Each segment records req/s (wrk), the CPU of every process
(/proc: each target, each worker, nginx; wrk's from its rusage), the CPU left idle on the
machine (/proc/stat) and, half-way, how many of wrk's connections each worker holds (sockets in
/proc/<pid>/fd against /proc/net/tcp), so an uneven SO_REUSEPORT spread shows. ``--pin`` puts
processes on cores with sched_setaffinity (what ran where is in the report).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import nginx_upstream, procs, wrk
from bench.bodies import BODIES, body
from bench.workloads import AUTH, PATH

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "workers"
PASS, ONE, TWO = "passthrough", "aifw-default-w1", "aifw-default-w2"
WANT = 1.7


@dataclass(frozen=True)
class Layout:
    """Which CPUs each process may run on (None: anywhere). ``workers[i]`` is for worker i of a
    several-worker target; a single-process target uses ``proxy``."""

    name: str
    tools: frozenset[int] | None          # wrk and nginx
    proxy: frozenset[int] | None
    workers: tuple[frozenset[int] | None, ...]

    def describe(self) -> str:
        def cpus(s):
            return "any CPU" if s is None else "CPU " + ",".join(map(str, sorted(s)))
        return (f"`{self.name}`: wrk and nginx on {cpus(self.tools)}; the pass-through and the single "
                f"worker on {cpus(self.proxy)}; the two workers on "
                + " and ".join(cpus(w) for w in self.workers))


def layouts(ncpu: int) -> dict[str, Layout]:
    every = None
    if ncpu < 2:
        return {"none": Layout("none", every, every, (every, every))}
    c0, c1 = frozenset({0}), frozenset({1})
    return {
        "none": Layout("none", every, every, (every, every)),
        # one core is the single worker's alone; the two workers get one core each, the second
        # shared with wrk and nginx (which is the whole machine: nothing is left over)
        "split": Layout("split", c1, c0, (c0, c1)),
    }


def boost(nice: int) -> tuple[str | None, str | None]:
    """Run this process (and everything it starts) at niceness ``nice``, and its session's
    autogroup too: Linux groups each session's processes and shares the CPU equally between busy
    groups whatever their niceness, so another session's test suite would otherwise take its
    share of the second core. Returns (the autogroup's niceness before, to give back with
    ``unboost``; why not, e.g. not root)."""
    group = Path("/proc/self/autogroup")
    try:
        before = group.read_text().split()[-1] if group.exists() else None
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        if before is not None:
            group.write_text(str(nice))
    except (OSError, IndexError) as exc:
        return None, str(exc)
    return before, None


def unboost(before: str | None) -> None:
    """The autogroup is the calling shell's session's: give its niceness back."""
    if before is not None:
        try:
            Path("/proc/self/autogroup").write_text(before)
        except OSError:
            pass


def priority() -> str:
    try:
        group = Path("/proc/self/autogroup").read_text().split()[-1]
    except (OSError, IndexError):
        group = "–"
    return f"niceness {os.getpriority(os.PRIO_PROCESS, 0)}, autogroup niceness {group}"


def machine_idle() -> tuple[float, float]:
    """(idle + iowait, total) jiffies summed over all CPUs, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])


def socket_inodes(port: int, text: str) -> set[str]:
    """Inodes of ESTABLISHED sockets whose local port is ``port`` in a /proc/net/tcp table."""
    found = set()
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 9 and cols[3] == "01" and int(cols[1].rsplit(":", 1)[1], 16) == port:
            found.add(cols[9])
    return found


def connections_per_pid(pids: list[int], port: int) -> list[int]:
    """How many established connections to ``port`` each pid holds open."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            inodes |= socket_inodes(port, Path(table).read_text())
        except FileNotFoundError:
            pass
    counts = []
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except FileNotFoundError:
            pass
        counts.append(n)
    return counts


@dataclass
class Segment:
    target: str
    connections: int
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float]           # process label -> CPU seconds in the segment
    idle_cpus: float                # CPUs' worth left idle on the machine (0..ncpu)
    seconds: float
    spread: list[int] = field(default_factory=list)   # wrk connections held by each worker
    # serving process label -> (voluntary, involuntary) context switches of its threads in the
    # segment: whether a worker ever waits (voluntary) or is only preempted by wrk, nginx and
    # other sessions (involuntary), in counts that do not move with the machine's load the way
    # req/s does
    switches: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def target_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if k.startswith(self.target))

    def others_cpus(self, ncpu: int) -> float:
        """CPUs' worth busy with processes outside the benchmark (other sessions, the kernel)."""
        ours = sum(self.cpu.values()) / self.seconds if self.seconds else 0.0
        return max(0.0, ncpu - self.idle_cpus - ours)

    def switches_per_request(self) -> tuple[float, float] | None:
        """(voluntary, involuntary) context switches per request, the target's processes summed."""
        if not self.requests or not self.switches:
            return None
        return (sum(v for v, _ in self.switches.values()) / self.requests,
                sum(i for _, i in self.switches.values()) / self.requests)

    def tools_ms_per_request(self) -> float | None:
        """CPU ms per request of the load tools (wrk and nginx)."""
        if not self.requests:
            return None
        return (self.cpu.get("nginx", 0.0) + self.cpu.get("wrk", 0.0)) / self.requests * 1000

    def cpu_ms_per_request(self, label: str | None = None) -> float | None:
        n = self.requests
        if not n:
            return None
        value = self.target_cpu if label is None else self.cpu.get(label, 0.0)
        return value / n * 1000


@dataclass
class Running:
    name: str
    service: procs.Service
    port: int
    pids: list[int]                 # the processes that serve (the workers, or the one process)


def _pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Every thread of ``pid`` (an affinity is per thread: the audit writer and the executor's
    threads started before this keep theirs otherwise; later ones inherit it)."""
    if cpus is None:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            pass


def _serving_pids(service: procs.Service, workers: int) -> list[int]:
    assert service.proc is not None
    if workers <= 1:
        return [service.proc.pid]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        kids = sorted(procs.descendants(service.proc.pid))
        if len(kids) >= workers:
            return kids[:workers]    # forked in worker order: lower pid first
        time.sleep(0.05)
    raise RuntimeError(f"{service.name}: {workers} workers did not appear")


def start_targets(upstream: str, layout: Layout, log_dir: Path) -> dict[str, Running]:
    py = sys.executable
    specs = [
        (PASS, [py, "-m", "bench.passthrough", "--port", "{port}", "--upstream", upstream,
                "--loop", "uvloop"], 1),
        (ONE, [py, "-m", "proxy", "serve", "--policy", "policies/default.yaml", "--port", "{port}"], 1),
        (TWO, [py, "-m", "proxy", "serve", "--policy", "policies/default.yaml", "--port", "{port}",
               "--workers", "2"], 2),
    ]
    running: dict[str, Running] = {}
    try:
        for name, cmd, workers in specs:
            audit = RESULTS / f"var-{name}"
            shutil.rmtree(audit, ignore_errors=True)
            port = procs.free_port()
            env = {"AIFW_UPSTREAM_URL": upstream + "/v1", "AIFW_AUDIT_DIR": str(audit)}
            service = procs.start(name, [c.replace("{port}", str(port)) for c in cmd], env, port,
                                  log_dir, ROOT)
            running[name] = Running(name, service, port, [])
            problem = procs.wait_ready(service, "/v1/models", AUTH, timeout=60)
            if problem:
                raise RuntimeError(f"{name} did not start: {problem}\n{service.log_tail()}")
            pids = _serving_pids(service, workers)
            running[name].pids = pids
            if workers > 1:
                for pid, cpus in zip(pids, layout.workers):
                    _pin(pid, cpus)
            else:
                _pin(pids[0], layout.proxy)
    except BaseException:
        for r in running.values():
            r.service.stop()
        raise
    return running


def run_segment(target: Running, others: dict[str, int], script: Path, connections: int, seconds: int,
                seed: int, layout: Layout) -> Segment:
    """One wrk run against ``target``; ``others``: label -> pid of the other processes whose CPU
    is recorded (nginx)."""
    labels = ({target.name: target.pids[0]} if len(target.pids) == 1 else
              {f"{target.name}/w{i}": pid for i, pid in enumerate(target.pids)})
    if len(target.pids) > 1:
        labels[f"{target.name}/parent"] = target.service.proc.pid
    serving = dict(labels)
    labels.update(others)
    before = {k: procs.own_cpu_seconds(pid) for k, pid in labels.items()}
    switches0 = {k: procs.context_switches(pid) for k, pid in serving.items()}
    idle0, total0 = machine_idle()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = wrk.command(f"http://127.0.0.1:{target.port}{PATH}", str(script), connections, seconds, seed)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, layout.tools)) if layout.tools else None)
    spread: list[int] = []
    sampler = threading.Timer(seconds / 2, lambda: spread.extend(connections_per_pid(target.pids, target.port)))
    sampler.start()
    out, _ = proc.communicate(timeout=seconds + 60)
    sampler.join()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle1, total1 = machine_idle()
    cpu = {k: procs.own_cpu_seconds(pid) - before[k] for k, pid in labels.items()}
    switches = {}
    for k, pid in serving.items():
        (v0, i0), (v1, i1) = switches0[k], procs.context_switches(pid)
        switches[k] = (v1 - v0, i1 - i0)
    cpu["wrk"] = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    result = wrk.parse(out)
    ncpu = os.cpu_count() or 1
    idle = (idle1 - idle0) / (total1 - total0) * ncpu if total1 > total0 else 0.0
    return Segment(target.name, connections, result.rps, result.requests, result.errors, result.p50_ms,
                   result.p99_ms, cpu, idle, result.seconds, spread, switches)


def chain_records(directory: Path) -> dict[str, int]:
    """Audit entries per chain in an audit directory (one chain per worker: worker 0 writes
    ``audit-<time>-<seq>.jsonl``, worker i ``audit-w<i>-…``)."""
    counts: dict[str, int] = {}
    for path in sorted(directory.glob("audit-*.jsonl")):
        parts = path.name.split("-")
        chain = parts[1] if parts[1].startswith("w") else "w0"   # worker 0 writes audit-<time>-…
        with path.open("rb") as f:
            counts[chain] = counts.get(chain, 0) + sum(1 for _ in f)
    return counts


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(segments: list[Segment], layout: Layout, rounds: int, seconds: int, body_name: str,
           loads: tuple[tuple[float, ...], tuple[float, ...]], started: str, records: dict[str, dict[str, int]]) -> str:
    ncpu = os.cpu_count()
    conns = sorted({s.connections for s in segments})
    out = [f"# --workers 2 against one worker ({started} UTC)", "",
           f"`policies/default.yaml`, body `{body_name}` (bench/bodies.py, a new user turn per request), "
           f"load from wrk (1 thread) with a fixed-answer nginx as the provider; {rounds} rounds of "
           f"{seconds} s segments, target order alternating. Pinning: {layout.describe()}. "
           f"Priority of every benchmark process: {priority()}. "
           f"Load average at the start {_load(loads[0])}, at the end {_load(loads[1])} on {ncpu} CPUs.", "",
           "| connections | target | req/s median | min–max | ÷ one worker | p50 / p99 ms | CPU ms/req "
           "(target) | target CPUs busy | nginx + wrk CPUs busy | other processes' CPUs busy | idle CPUs "
           "| conns per worker | errors |",
           "|" + "---|" * 13]
    for c in conns:
        base = [s.rps for s in segments if s.target == ONE and s.connections == c]
        for name in (PASS, ONE, TWO):
            seg = [s for s in segments if s.target == name and s.connections == c]
            if not seg:
                continue
            rps = [s.rps for s in seg]
            ratio = median([a / b for a, b in _paired(seg, base)]) if name != ONE and base else None
            cpu_ms = median([s.cpu_ms_per_request() or 0.0 for s in seg])
            busy = median([s.target_cpu / s.seconds for s in seg])
            tools = median([(s.cpu.get("nginx", 0.0) + s.cpu.get("wrk", 0.0)) / s.seconds for s in seg])
            idle = median([s.idle_cpus for s in seg])
            rest = median([s.others_cpus(ncpu) for s in seg])
            spread = " ".join("/".join(map(str, s.spread)) for s in seg) if name == TWO else ""
            out.append(f"| {c} | {name} | {median(rps):.0f} | {min(rps):.0f}–{max(rps):.0f} | "
                       f"{'' if ratio is None else f'{ratio:.2f}×'} | {median([s.p50_ms for s in seg]):.2f} / "
                       f"{median([s.p99_ms for s in seg]):.2f} | {cpu_ms:.3f} | {busy:.2f} | {tools:.2f} | "
                       f"{rest:.2f} | {idle:.2f} | {spread} | {sum(s.errors for s in seg)} |")
    out += ["", "Per worker (two-worker target): CPU seconds per segment, parent included:", ""]
    for c in conns:
        for s in (s for s in segments if s.target == TWO and s.connections == c):
            parts = ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in s.cpu.items() if k.startswith(TWO))
            out.append(f"- c={c}: {parts}; connections {'/'.join(map(str, s.spread))}")
    out += ["", "Context switches per request, every thread of the serving processes summed (voluntary: "
            "a thread waited for something, e.g. the socket or the GIL; involuntary: another process "
            "took its CPU), medians over the rounds:", ""]
    for c in conns:
        parts = []
        for name in (PASS, ONE, TWO):
            per = [x for s in segments if s.target == name and s.connections == c
                   for x in [s.switches_per_request()] if x is not None]
            if per:
                parts.append(f"{name} {median([v for v, _ in per]):.3f} / {median([i for _, i in per]):.3f}")
        if parts:
            out.append(f"- c={c}: " + ", ".join(parts))
    tools = [f"{label} {median([s.cpu.get(label, 0.0) / s.requests * 1e6 for s in segments if s.requests]):.0f} µs"
             for label in ("nginx", "wrk")]
    out += ["", f"CPU per request of the load tools, median over all segments: {', '.join(tools)}."]
    if records:
        out += ["", "Audit records per chain: " + "; ".join(
            f"{name} " + ", ".join(f"{k} {v}" for k, v in sorted(per.items())) for name, per in records.items())]
    out += ["", *verdicts(segments)]
    return "\n".join(out) + "\n"


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def _paired(segs: list[Segment], base: list[float]) -> list[tuple[float, float]]:
    """Each round's segment with the same round's one-worker req/s (segments are in round order)."""
    return [(s.rps, b) for s, b in zip(segs, base) if b]


def verdicts(segments: list[Segment], ncpu: int | None = None) -> list[str]:
    ncpu = ncpu or os.cpu_count() or 1
    lines = []
    for c in sorted({s.connections for s in segments}):
        one = [s for s in segments if s.target == ONE and s.connections == c]
        two = [s for s in segments if s.target == TWO and s.connections == c]
        if not one or not two:
            continue
        ratios = [a / b for a, b in _paired(two, [s.rps for s in one])]
        r = median(ratios)
        # req/s = CPUs busy ÷ CPU per request: which of the two kept the ratio where it is
        cpus = median([s.target_cpu / s.seconds for s in two]) / median([s.target_cpu / s.seconds for s in one])
        per_request = (median([s.cpu_ms_per_request() or 0.0 for s in two])
                       / median([s.cpu_ms_per_request() or 0.0 for s in one]))
        # the most two workers can serve on this box: every CPU busy with them or with the load
        # tools, each request costing what it cost in these segments (so other sessions, which
        # take CPUs too, only lower what is reached, not this bound)
        two_ms = median([s.cpu_ms_per_request() or 0.0 for s in two])
        tools_ms = median([s.tools_ms_per_request() or 0.0 for s in two])
        ceiling = ncpu / (two_ms + tools_ms) * 1000 if two_ms + tools_ms else float("nan")
        one_rps = median([s.rps for s in one])
        lines.append(f"- {TWO} ÷ {ONE} at {c} connections: median of the per-round ratios {r:.2f}× "
                     f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}) "
                     f"**{'PASS' if r >= WANT else 'FAIL'}** (≥ {WANT}×): the workers had {cpus:.2f}× "
                     f"the CPU time of one, at {per_request:.2f}× its CPU per request; with wrk and "
                     f"nginx at {tools_ms * 1000:.0f} µs per request, {ncpu} CPUs can serve at most "
                     f"{ceiling:.0f} req/s with two workers ({ceiling / one_rps if one_rps else float('nan'):.2f}× "
                     f"one worker's median)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="seconds per segment (whole)")
    parser.add_argument("--connections", default="16,64", help="comma list")
    parser.add_argument("--body", default="chat1k", choices=sorted(BODIES))
    parser.add_argument("--pin", default="none", choices=("none", "split"),
                        help="CPU placement (see the report's 'Pinning')")
    parser.add_argument("--nice", type=int, default=None,
                        help="run every benchmark process at this niceness, its session's autogroup too "
                             "(negative needs root; e.g. -19: as on an idle machine while other "
                             "sessions keep both cores busy)")
    args = parser.parse_args(argv)
    before = None
    if args.nice is not None:
        before, problem = boost(args.nice)
        if problem:
            print(f"--nice: {problem}", file=sys.stderr)
            return 2
    try:
        return _measure(args)
    finally:
        unboost(before)


def _measure(args) -> int:
    missing = [tool for tool in ("wrk", "nginx") if shutil.which(tool) is None
               and not (tool == "nginx" and Path(nginx_upstream.SBIN).exists())]
    if missing:
        print(f"bench.workers needs {' and '.join(missing)}: `make bench-deps` (Debian: apt-get "
              f"install wrk nginx-light)", file=sys.stderr)
        return 2
    layout = layouts(os.cpu_count() or 1).get(args.pin) or layouts(1)["none"]
    conns = [int(c) for c in args.connections.split(",")]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    log_dir = RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    script = RESULTS / f"{args.body}.lua"
    script.write_text(wrk.lua_script(body(BODIES[args.body]), AUTH))

    # bytecode as an installed package has it (PYTHONDONTWRITEBYTECODE may be set)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "proxy", "bench"], cwd=ROOT,
                   stdout=subprocess.DEVNULL, check=False,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    up_port = procs.free_port()
    prefix = RESULTS / "nginx"
    conf = nginx_upstream.write_config(prefix, up_port)
    nginx = procs.start("nginx", nginx_upstream.command(prefix, conf), {}, up_port, log_dir, ROOT)
    running: dict[str, Running] = {}
    load0 = os.getloadavg()
    try:
        problem = procs.wait_ready(nginx, "/v1/models", AUTH)
        if problem:
            raise RuntimeError(f"nginx did not start: {problem}\n{nginx.log_tail()}")
        _pin(nginx.proc.pid, layout.tools)
        running = start_targets(nginx.url, layout, log_dir)
        others = {"nginx": nginx.proc.pid}
        seed = 1
        for target in running.values():      # warm-up, unrecorded: lazy imports, pools, caches
            run_segment(target, others, script, max(conns), 1, seed, layout)
            seed += 1
        segments: list[Segment] = []
        names = list(running)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for c in conns:
                for name in order:
                    segments.append(run_segment(running[name], others, script, c, args.seconds, seed, layout))
                    seed += 1
            print(f"[workers] round {r + 1}/{args.rounds}: " + ", ".join(
                f"{s.target} c={s.connections} {s.rps:.0f}" for s in segments[-len(conns) * len(names):]),
                file=sys.stderr)
    finally:
        for r in running.values():
            r.service.stop()
        nginx.stop()
    load1 = os.getloadavg()
    records = {name: chain_records(RESULTS / f"var-{name}") for name in (ONE, TWO)}
    text = report(segments, layout, args.rounds, args.seconds, args.body, (load0, load1), started, records)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"workers-{stamp}.md").write_text(text)
    (RESULTS / "latest.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
