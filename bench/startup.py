"""Start-up alone: time to ready, CPU until ready and RSS of `aifw serve`, and the time of
`aifw policy check`, for each policy; optionally for an older checkout too.

    .venv/bin/python -m bench.startup                       # the shipped and bench policies
    .venv/bin/python -m bench.startup --before /tmp/old     # and the code checked out there

"Ready" is the time from spawning `aifw serve` until `GET /healthz` answers (polled every 5 ms).
Bytecode is written first, as an installed package has it. Starts run one at a time.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request

from bench import procs
from bench.run import RESULTS, ROOT

POLICIES = ("policies/default.yaml", "policies/strict.yaml", "bench/policies/noscan.yaml",
            "bench/policies/all-guards.yaml")
ENV = {"AIFW_UPSTREAM_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "bench", "ANTHROPIC_API_KEY": "bench",
       "AIFW_AUDIT_DIR": str(RESULTS / "var-startup")}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **ENV}


def _aifw(checkout: str | None) -> list[str]:
    if checkout is None:
        return [sys.executable, "-m", "proxy"]
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {checkout!r}); "
                                  "from proxy.cli import main; sys.exit(main())"]


def start_once(aifw: list[str], policy: str) -> tuple[float, float, float]:
    """(seconds to ready, CPU seconds until then, RSS MiB then)."""
    port = procs.free_port()
    t0 = time.monotonic()
    proc = subprocess.Popen([*aifw, "serve", "--policy", policy, "--port", str(port)], cwd=ROOT,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"aifw serve --policy {policy} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.005)
        return time.monotonic() - t0, procs.cpu_seconds(proc.pid), procs.rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def check_once(aifw: list[str], policies: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, max RSS MiB) of one `aifw policy check` of ``policies``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run([*aifw, "policy", "check", *policies], cwd=ROOT, env=_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, after.ru_maxrss / 1024


def _span(runs: list[tuple], i: int, fmt: str = ".2f") -> str:
    values = [r[i] for r in runs]
    return f"{min(values):{fmt}}–{max(values):{fmt}}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="DIR", help="also measure the code checked out in DIR")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "proxy"], cwd=ROOT, env=_env(),
                   stdout=subprocess.DEVNULL, check=False)
    variants = [("after", None)] + ([("before", os.path.abspath(args.before))] if args.before else [])
    lines = ["| code | command | wall s | CPU s | RSS MiB |", "|---|---|---|---|---|"]
    for label, checkout in variants:
        aifw = _aifw(checkout)
        for policy in POLICIES:
            runs = [start_once(aifw, policy) for _ in range(args.runs)]
            lines.append(f"| {label} | serve `{policy}` until ready | {_span(runs, 0)} | "
                         f"{_span(runs, 1)} | {_span(runs, 2, '.0f')} |")
        runs = [check_once(aifw, ["policies/default.yaml", "policies/strict.yaml"]) for _ in range(args.runs)]
        lines.append(f"| {label} | policy check default.yaml strict.yaml | {_span(runs, 0)} | "
                     f"{_span(runs, 1)} | {_span(runs, 2, '.0f')} |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\n".join(lines) + f"\n\nmin–max of {args.runs} runs each; load average {load} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
