"""What users of streaming chat feel: time to the first *content* token and the gaps between
content deltas, on paced streams (4-character deltas every 20 ms, about 50 tokens/s, and every
5 ms), through each target in one interleaved run.

    .venv/bin/python -m bench.bench_streams             # ~2 minutes
    .venv/bin/python -m bench.bench_streams --rounds 2  # quicker

Targets: the fake provider directly, the bare aiohttp pass-through (bench/passthrough.py), aifw
with no scanning guard (bench/policies/noscan.yaml, "core"), aifw under policies/default.yaml,
and aifw with every answer-side guard on (bench/policies/answer-guards.yaml: canaries and
exfiltration markup, PII detection with block and restore: the answer side of strict.yaml), and
the same with e-mail addresses scanned in answers too (answer-guards-email.yaml). Every request measures from
just before it is sent: first content delta, each later content delta (gap to the previous
one), how many content deltas arrived. Reported as medians over all requests (p50/p99 of gaps
over all gaps) and as differences against the pass-through measured in the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

from bench import procs
from bench.run import ROOT, start_targets
from bench.targets import DIRECT, PASSTHROUGH, Target, aifw_target
from bench.workloads import AUTH

# Ordinary prose with capitals, numbers and punctuation, 400 characters: 100 deltas of 4.
REPLY = ("Sure. The quarterly report covers three regions and 12 product lines; revenue grew in "
         "two of them. In Europe the numbers were flat, while Asia added 7 new customers in March. "
         "The team suggests focusing on retention next quarter, because churn rose slightly after "
         "the price change. Let me know if you want the details per region, or a short summary "
         "for the board meeting on Friday. Happy to help with the slides too, of course. Thanks!")
DELTA_CHARS = 4
PACES_MS = (20, 5)
POLICIES = ROOT / "bench" / "policies"


def targets(scratch: Path) -> list[Target]:
    audit = {"AIFW_AUDIT_DIR": str(scratch / "audit-{port}")}     # one audit writer per directory
    return [Target(DIRECT, None),
            Target(PASSTHROUGH, ("{python}", "-m", "bench.passthrough", "--port", "{port}", "--upstream", "{upstream}")),
            aifw_target("aifw-core", str(POLICIES / "noscan.yaml"), audit),
            aifw_target("aifw-default", str(ROOT / "policies" / "default.yaml"), audit),
            aifw_target("aifw-answer-guards", str(POLICIES / "answer-guards.yaml"), audit),
            aifw_target("aifw-answer-email", str(POLICIES / "answer-guards-email.yaml"), audit)]


async def one_stream(session: aiohttp.ClientSession, url: str, pace_ms: int) -> tuple[float, list[float], int]:
    """(seconds to the first content delta, gaps between content deltas, content deltas)."""
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "Summarise the report."}]}
    headers = {**AUTH, "content-type": "application/json", "x-fake-reply": quote(REPLY),
               "x-fake-chunks": str(len(REPLY) // DELTA_CHARS), "x-fake-mode": f"slow:{pace_ms}"}
    arrivals: list[float] = []
    buf = b""
    text = []
    t0 = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", data=orjson.dumps(body), headers=headers) as resp:
        assert resp.status == 200, resp.status
        async for chunk in resp.content.iter_any():
            now = time.perf_counter()
            buf += chunk
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                data = next((line[6:] for line in ev.split(b"\n") if line.startswith(b"data: ")), b"")
                if not data.startswith(b"{"):
                    continue
                obj = orjson.loads(data)
                for choice in obj.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        arrivals.append(now)
                        text.append(content)
    if "".join(text) != REPLY:
        raise RuntimeError(f"{url}: the answer arrived changed")
    return arrivals[0] - t0, [b - a for a, b in zip(arrivals, arrivals[1:])], len(arrivals)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(services: dict[str, procs.Service], rounds: int, per_round: int) -> dict:
    results: dict[tuple[str, int], dict[str, list]] = {}
    names = list(services)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        for name in names:       # warm up every target (imports, connections, first compile)
            await one_stream(session, services[name].url, 1)
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for pace in PACES_MS:
                for name in order:
                    cell = results.setdefault((name, pace), {"ttft": [], "gaps": [], "deltas": [], "cpu": []})
                    proc = services[name].proc
                    cpu0 = procs.cpu_seconds(proc.pid) if proc else None
                    for _ in range(per_round):
                        ttft, gaps, deltas = await one_stream(session, services[name].url, pace)
                        cell["ttft"].append(ttft)
                        cell["gaps"].extend(gaps)
                        cell["deltas"].append(deltas)
                    if proc and cpu0 is not None:
                        cell["cpu"].append((procs.cpu_seconds(proc.pid) - cpu0) / per_round)
            print(f"[bench_streams] round {r + 1}/{rounds} done", file=sys.stderr)
    return results


def render(results: dict, names: list[str], rounds: int, per_round: int) -> str:
    out = []
    for pace in PACES_MS:
        base = results[(PASSTHROUGH, pace)]
        b_ttft = statistics.median(base["ttft"]) * 1000
        b_p99 = pct(base["gaps"], 0.99) * 1000
        out += [f"\n{DELTA_CHARS}-character deltas every {pace} ms ({len(REPLY) // DELTA_CHARS} deltas, "
                f"{rounds * per_round} streams per target):\n",
                "| target | first content token, median ms | vs pass-through | gap p50 ms | gap p99 ms | "
                "p99 vs pass-through | content deltas (provider: %d) | CPU ms/stream |" % (len(REPLY) // DELTA_CHARS),
                "|---|---|---|---|---|---|---|---|"]
        for name in names:
            cell = results[(name, pace)]
            ttft = statistics.median(cell["ttft"]) * 1000
            p50, p99 = pct(cell["gaps"], 0.5) * 1000, pct(cell["gaps"], 0.99) * 1000
            deltas = sorted(set(cell["deltas"]))
            cpu = f"{statistics.median(cell['cpu']) * 1000:.1f}" if cell["cpu"] else "–"
            out.append(f"| {name} | {ttft:.2f} | {ttft - b_ttft:+.2f} | {p50:.2f} | {p99:.2f} | {p99 - b_p99:+.2f} "
                       f"| {'/'.join(map(str, deltas))} | {cpu} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=3, help="streams per target, pace and round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aifw-bench-streams-") as tmp:
        tmpdir = Path(tmp)
        log_dir = tmpdir / "logs"
        log_dir.mkdir()
        up_port = procs.free_port()
        upstream = procs.start("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port)], {},
                               up_port, log_dir, ROOT)
        services: dict[str, procs.Service] = {}
        notes: list[str] = []
        try:
            problem = procs.wait_ready(upstream, "/v1/models", AUTH)
            if problem:
                raise RuntimeError(f"fake upstream did not start: {problem}\n{upstream.log_tail()}")
            services = start_targets(targets(tmpdir), upstream, log_dir, notes)
            results = asyncio.run(measure(services, args.rounds, args.per_round))
        finally:
            for svc in services.values():
                svc.stop()
            upstream.stop()
    print(render(results, list(services), args.rounds, args.per_round) + "\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
