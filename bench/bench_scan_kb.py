"""CPU cost of the local injection tier per text and per KB (not a test).

    .venv/bin/python -m bench.bench_scan_kb [--rounds 7]

Each workload is judged with the default settings (rules + model) the way the proxy judges it,
and timed in CPU time (``time.process_time``), the best of ``--rounds`` rounds: other processes
on a shared machine barely move that, unlike wall-clock medians. Workloads:
- ``chat user turn``: the newest user turn of bench/bodies.py's ~1 KB chat, beside its system
  prompt (what the proxy judges per request of that body once the older turns are cached);
- ``1KB varied prose``: bench/workloads.py's ~1 KB user turn;
- ``1KB real prompts``: the first KB of real Chatbot Arena prompts (median per prompt), when the
  shared datasets are next to the repository;
- ``1KB`` / ``20KB tool result``: bench/bench_detection.py's mail-like document as a tool result
  after a short user turn (the indirect-injection detector's workload).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.bench_detection import DOCUMENT, real_prompts
from bench.bodies import CHAT_1K
from bench.workloads import MESSAGES_WITH_RULES
from proxy.detection.assess import assess
from proxy.detection.settings import compile_settings


def cpu_best(fn, n: int, rounds: int) -> float:
    """Seconds of CPU per call, the best round."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return best


def workloads() -> list[tuple[str, list[list[tuple[str, str]]], int]]:
    """(name, the slot lists judged, repetitions per round)."""
    system = CHAT_1K[0]["content"]
    # a new number per request, as the load generator sends it (bench/bodies.py's #REQ#)
    turns = [[("system", system), ("user", CHAT_1K[3]["content"].replace("#REQ#", str(40000 + i)))]
             for i in range(50)]
    out = [("chat user turn", turns, 20),
           ("1KB varied prose", [[("user", MESSAGES_WITH_RULES[1]["content"])]], 500)]
    real = real_prompts()
    if real:
        out.append(("1KB real prompts", [[("user", t)] for t in real], 5))
    doc = DOCUMENT * (20 * 1024 // len(DOCUMENT) + 1)
    for size, n in ((1024, 300), (20 * 1024, 20)):
        out.append((f"{size // 1024}KB tool result",
                    [[("user", "Summarise the attached document."), ("tool", doc[:size])]], n))
    return out


def run(rounds: int) -> list[tuple[str, float, float]]:
    """(workload, µs per text, µs per KB of the text judged) per workload."""
    settings = compile_settings({})
    rows = []
    for name, slot_lists, n in workloads():
        per = []
        for slots in slot_lists:
            assess(settings, slots)           # warm: the system prompt's analysis is cached
            per.append(cpu_best(lambda: assess(settings, slots), n, rounds))
        cost = statistics.median(per)
        size = statistics.median(sum(len(t.encode()) for r, t in slots if r != "system")
                                 for slots in slot_lists)
        rows.append((name, cost * 1e6, cost * 1e6 / (size / 1024)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'workload':22} {'µs/text':>9} {'µs/KB':>9}")
    for name, per_text, per_kb in run(args.rounds):
        print(f"{name:22} {per_text:9.1f} {per_kb:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
