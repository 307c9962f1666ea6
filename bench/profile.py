"""Where aifw's CPU goes per request: the proxy under cProfile (on its CPU clock), driven by the load generator.

    .venv/bin/python -m bench.profile                                  # default.yaml, chat1k
    .venv/bin/python -m bench.profile --policy bench/policies/all-guards.yaml --body conv20
    .venv/bin/python -m bench.profile --sort cumtime --top 60

The fake provider and the load generator run in their own processes, as in bench.run; only the
proxy is profiled (cProfile roughly doubles its CPU cost, so read shares, not absolute times).
Writes the raw profile to bench/results/profile.pstats (snakeviz, pstats).
"""
from __future__ import annotations

import argparse
import pstats
import signal
import sys
import time

from bench import procs
from bench.bodies import BODIES
from bench.run import RESULTS, ROOT, LoadGen
from bench.workloads import AUTH, PATH, BodyWorkload


# cProfile on the process's CPU clock: a wall-clock profile on a busy machine mostly measures
# the time the proxy sat descheduled inside send() and epoll. It profiles the measured window
# only (SIGUSR1 starts it, SIGUSR2 stops it and writes the file): start-up and warm-up
# (imports, compiling, first-use loads) would otherwise crowd the per-request work out.
PROFILED = """
import cProfile, signal, sys, time
from proxy.cli import main
out = sys.argv[1]
profiler = cProfile.Profile(time.process_time)

def stop(signum, frame):
    profiler.disable()
    profiler.dump_stats(out)

signal.signal(signal.SIGUSR1, lambda signum, frame: profiler.enable())
signal.signal(signal.SIGUSR2, stop)
sys.exit(main(sys.argv[2:]))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", default="policies/default.yaml")
    parser.add_argument("--body", default="chat1k", choices=sorted(BODIES))
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumtime"))
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    log_dir = RESULTS / "logs"
    out = RESULTS / "profile.pstats"
    out.unlink(missing_ok=True)
    up_port, port = procs.free_port(), procs.free_port()
    upstream = procs.start("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port)],
                           {}, up_port, log_dir, ROOT)
    proxy = None
    loadgen = None
    try:
        assert procs.wait_ready(upstream, "/v1/models", AUTH) is None, upstream.log_tail()
        proxy = procs.start("profiled", [sys.executable, "-c", PROFILED, str(out), "serve", "--policy",
                                         args.policy, "--port", str(port)],
                            {"AIFW_UPSTREAM_URL": upstream.url + "/v1",
                             "AIFW_AUDIT_DIR": str(RESULTS / "var-profile")}, port, log_dir, ROOT)
        problem = procs.wait_ready(proxy, "/v1/models", AUTH)
        assert problem is None, f"{problem}\n{proxy.log_tail()}"
        loadgen = LoadGen(log_dir)
        workload = BodyWorkload(f"{args.body} c={args.connections}", args.connections, False, AUTH, args.body)
        loadgen.run(proxy.url + PATH, workload, 1.0)
        time.sleep(1.0)    # background loads after the warm-up (tokenizer) stay out of the profile
        proxy.proc.send_signal(signal.SIGUSR1)
        result = loadgen.run(proxy.url + PATH, workload, args.seconds)
        proxy.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if loadgen:
            loadgen.close()
        if proxy:
            proxy.stop()
        upstream.stop()
    n = result["count"] + result["warmup"] + result["errors"]
    print(f"{n} requests profiled in {result['elapsed']:.1f}s; errors {result['errors']}")
    stats = pstats.Stats(str(out))
    stats.sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
