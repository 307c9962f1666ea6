"""Instructions per text of each bench_scan_kb workload, counted by callgrind around ``assess``
only: a figure that does not move with the load, where bench_scan_kb's CPU time swings by tens
of percent on a shared machine (not a test).

    .venv/bin/python -m bench.scan_instructions [--only "20KB tool result,1KB tool result"]
    .venv/bin/python -m bench.scan_instructions --tree /tmp/base     # another checkout's engine

The process runs itself again under ``valgrind --tool=callgrind --instr-atstart=no``, after
compiling the default settings natively (into the disk cache, proxy/precompiled.py: under
valgrind the rule vetting's time bound would refuse slow-looking patterns). Per workload: two
warm calls per text, the collector frozen, then instrumentation on around ``REPS`` calls per text
only. ``--tree``: that checkout's ``proxy`` package judges this checkout's workloads.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPS = {"1KB varied prose": 20, "1KB tool result": 20, "20KB tool result": 3}   # others: 1


def _measure(only: list[str] | None, out_dir: Path) -> None:
    # the engine first: bench.bench_detection puts this checkout in front of sys.path
    from proxy.detection.assess import assess
    from proxy.detection.settings import compile_settings

    from bench.bench_scan_kb import workloads
    from bench.instructions import _window
    settings = compile_settings({})
    pid = os.getpid()
    print(f"engine: {Path(sys.modules['proxy'].__file__).parent.parent}", flush=True)
    for name, slot_lists, _n in workloads():
        if only and name not in only:
            continue
        reps = REPS.get(name, 1)
        for slots in slot_lists:
            assess(settings, slots)
            assess(settings, slots)
        gc.collect()
        gc.freeze()

        def work() -> None:
            for slots in slot_lists:
                for _ in range(reps):
                    assess(settings, slots)
        total, _seconds = _window(pid, out_dir, work)
        gc.unfreeze()
        print(f"{name:22} {total / (reps * len(slot_lists)) / 1e6:8.3f} M instructions/text", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated workload names")
    parser.add_argument("--tree", help="a checkout whose proxy package to measure")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tree:
        sys.path.insert(0, str(Path(args.tree).resolve()))
    only = args.only.split(",") if args.only else None
    if args.child:
        _measure(only, Path(args.child))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="scan-instr-") as out_dir:
        # a disk cache of this run's own, filled here: a shared one may lose an entry to another
        # run's pruning and have it compiled again under valgrind
        os.environ["AIFW_CACHE_DIR"] = str(Path(out_dir) / "cache")
        from proxy.detection.settings import compile_settings
        compile_settings({})
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out_dir}/callgrind.out.%p",
               sys.executable, "-m", "bench.scan_instructions", "--child", out_dir]
        cmd += ["--tree", args.tree] if args.tree else []
        cmd += ["--only", args.only] if args.only else []
        return subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode


if __name__ == "__main__":
    sys.exit(main())
