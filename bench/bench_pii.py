"""PII masking cost: 1 KB and 100 KB prompts, and a streamed answer with hold-back on vs off.

    .venv/bin/python bench/bench_pii.py

Prints ratios measured in one run (house rule 5); nothing here is asserted by tests.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.exchange import Exchange  # noqa: E402
from proxy.guards.base import CompileContext, StreamText  # noqa: E402
from proxy.guards.pii import SPEC  # noqa: E402
from proxy.services import Services  # noqa: E402
from proxy.textslots import TextSlot  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while the team reviews quarterly numbers "
         "and drafts a reply to the customer about order 4471 shipped on 2024-03-02").split()
PII = ["jane.roe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
       "123-45-6780", "10.20.30.40", "AKIAIOSFODNN7EXAMPLE", "call 415-555-0132"]


def make_text(size: int, pii_every: int = 40, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < size:
        piece = rng.choice(PII) if rng.randrange(pii_every) == 0 else rng.choice(WORDS)
        out.append(piece)
        n += len(piece) + 1
    return " ".join(out)[:size]


def exchange(text: str) -> Exchange:
    body = {"messages": [{"role": "user", "content": text}]}
    ex = Exchange("b", "POST", "/v1/chat/completions", "", {}, None, None, body=body)
    ex.request_slots = [TextSlot("user", "message", text, body["messages"][0], "content")]
    return ex


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_request(guard) -> None:
    print("## request masking (best of N, whole prompt)")
    print("| size | PII values | time | per KB |")
    print("|---:|---:|---:|---:|")
    for size, repeat in ((1024, 200), (100 * 1024, 5)):
        text = make_text(size)
        count = {}

        def run():
            ex = exchange(text)
            asyncio.run(guard.on_request(ex))
            count["n"] = sum(sum(f.counts.values()) for f in ex.findings)
        t = best_of(run, repeat)
        print(f"| {size // 1024} KB | {count['n']} | {t * 1e3:.2f} ms | {t * 1e3 / (size / 1024):.3f} ms |")


def bench_stream(guards: dict) -> None:
    answer = make_text(20 * 1024, seed=11) + " <EMAIL_ADDRESS_1>"
    chunks = [answer[i:i + 4] for i in range(0, len(answer), 4)]   # ~one token per delta
    print("\n## streamed answer: 20 KB in 4-character deltas")
    print("| mode | guard time per delta (mean) | p99 | held back (mean / max chars) | chars before first output |")
    print("|---|---:|---:|---:|---:|")
    for name, guard in guards.items():
        ex = exchange("I am jane.roe@example.com")
        asyncio.run(guard.on_request(ex)) if guard is not None else None
        s = StreamText()
        per, held, sent, first = [], [], 0, None
        got = 0
        for c in chunks:
            t0 = time.perf_counter()
            out = guard.on_chunk(ex, s, c) if guard is not None else c
            per.append(time.perf_counter() - t0)
            sent += len(c)
            got += len(out)
            # Masked output differs in length from its input: measure the buffer itself.
            held.append(len(ex.state["pii"].streams[s].buf) if guard is not None else 0)
            if first is None and out:
                first = sent
        per.sort()
        print(f"| {name} | {statistics.mean(per) * 1e6:.1f} µs | {per[int(len(per) * 0.99)] * 1e6:.1f} µs | "
              f"{statistics.mean(held):.1f} / {max(held)} | {first} |")


def main() -> None:
    services = Services()
    full = SPEC.compile({}, CompileContext(".", services))
    restore_only = SPEC.compile({"entities": {}, "defaultOperator": "none"}, CompileContext(".", services))
    restore_only_req = SPEC.compile({"entities": {e: {"request": "replace", "response": "none"} for e in
                                                  ("EMAIL_ADDRESS",)}, "defaultOperator": "none"},
                                    CompileContext(".", services))
    bench_request(full)
    bench_stream({"no pii guard": None, "restore only (no answer scanning)": restore_only_req,
                  "hold-back on (scan + restore, window 32)": full})
    del restore_only


if __name__ == "__main__":
    main()
