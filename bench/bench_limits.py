"""Rate-limit costs: the limiter per check (memory vs Redis) and, with --proxy, the proxy's
requests/s with limits on, memory vs Redis backend, through the shared harness (bench.run).

    .venv/bin/python -m bench.bench_limits              # limiter micro-benchmark, ~20 s
    .venv/bin/python -m bench.bench_limits --proxy      # + proxy comparison (bench.run, ~5 min)
    .venv/bin/python -m bench.bench_limits --proxy --quick

A private redis-server is started on a free port (never the shared one on 6379). Limits are
set so high that nothing is refused: this measures what counting costs, not refusals.
For the lead's harness, ``limit_targets(redis_url)`` returns the two aifw targets.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.endpoints import resolve  # noqa: E402
from proxy.exchange import Exchange, Identity  # noqa: E402
from proxy.limits.charges import build_charges  # noqa: E402
from proxy.limits.config import RedisSettings, compile_limits  # noqa: E402
from proxy.limits.memory import MemoryBackend  # noqa: E402
from proxy.limits.redis_backend import RedisBackend  # noqa: E402
from proxy.limits.tokens import TokenCounter, prompt_tokens  # noqa: E402
from proxy.textslots import TextSlot  # noqa: E402
from tests.limits.redis_server import RedisServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"
# A realistic mix: per-user request rate, per-key token rate, per-user monthly budget,
# per-key concurrency. High enough that the benchmark is never refused.
LIMITS = [
    {"name": "user-rpm", "scope": "user", "requests": "100000000/minute"},
    {"name": "key-tpm", "scope": "key", "tokens": "1000000000000/minute"},
    {"name": "user-month", "scope": "user", "budget": "1000000000000/month"},
    {"name": "key-inflight", "scope": "key", "concurrency": 100000},
]
PROMPT = ("Summarise the following meeting notes for the team and list the open actions. " * 12).strip()


def limits_section(backend: str, redis_url: str | None = None) -> dict:
    section: dict = {"backend": backend, "limits": LIMITS}
    if backend == "redis":
        section["redis"] = {"url": redis_url} if redis_url else {}
    return section


def write_policy(name: str, backend: str, redis_url: str | None = None) -> Path:
    """policies/default.yaml plus the ratelimit guard, written under bench/results/."""
    base = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    base.pop("$schema", None)
    base.setdefault("guards", {})["ratelimit"] = limits_section(backend, redis_url)
    out = RESULTS / "limits" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(base, sort_keys=False))
    return out


def limit_targets(redis_url: str):
    """The aifw targets for bench.run: limits in memory, and the same limits in Redis."""
    from bench.targets import aifw_target
    audit = RESULTS / "limits"   # one audit directory per process: the log allows one writer
    return [
        aifw_target("aifw-limits-memory", str(write_policy("limits-memory", "memory")),
                    env={"AIFW_AUDIT_DIR": str(audit / "audit-memory")}),
        aifw_target("aifw-limits-redis", str(write_policy("limits-redis", "redis")),
                    env={"AIFW_REDIS_URL": redis_url, "AIFW_AUDIT_DIR": str(audit / "audit-redis")}),
    ]


# -- micro-benchmark -------------------------------------------------------------------------
def _exchange(i: int) -> Exchange:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 256}
    ex = Exchange(request_id=f"r{i}", method="POST", path="/v1/chat/completions", query="", headers={},
                  client_ip=None, policy=None)
    ex.endpoint = resolve("POST", ex.path)
    ex.identity = Identity(key_id=f"key-{i % 50}", user=f"user-{i % 200}")
    ex.body, ex.model = body, "gpt-4o-mini"
    ex.request_slots = [TextSlot("user", "message", PROMPT, body["messages"][0], "content", 0)]
    return ex


async def _cycle(backend, config, ex: Exchange, background: list | None = None) -> float:
    """Reserve then settle; returns the reserve's latency (what a request waits for: the
    settlement runs after the client has its answer)."""
    t0 = time.perf_counter()
    now = time.time()
    charges = build_charges(config, ex.identity, ex.model, ("chat.completions", ex.path), 300, now)
    out = await backend.reserve(charges, ex.request_id, now)
    took = time.perf_counter() - t0
    assert out.allowed
    settle = backend.settle(charges, [-100 if c.limit.kind in ("tokens", "budget") else 0 for c in charges],
                            ex.request_id, now)
    if background is None:
        await settle
    else:   # as in the proxy: settlement runs in the background after the answer
        background.append(asyncio.ensure_future(settle))
    return took


async def _sequential(backend, config, n: int) -> list[float]:
    return [await _cycle(backend, config, ex) for ex in [_exchange(i) for i in range(n)]]


async def _concurrent(backend, config, n: int, connections: int) -> float:
    exs = [_exchange(i) for i in range(n)]
    queue = iter(exs)
    settles: list = []

    async def worker():
        for ex in queue:
            await _cycle(backend, config, ex, settles)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    await asyncio.gather(*settles)
    return n / (time.perf_counter() - t0)


def _row(name: str, times: list[float], rate: float | None) -> str:
    us = sorted(t * 1e6 for t in times)
    p50, p99 = statistics.median(us), us[int(len(us) * 0.99) - 1]
    rate_s = f"{rate:,.0f}" if rate else "-"
    return f"| {name} | {p50:.1f} | {p99:.1f} | {rate_s} |"


async def micro(redis_url: str, n: int) -> str:
    config = compile_limits({"limits": LIMITS})
    memory = MemoryBackend()
    redis_backend = RedisBackend(RedisSettings(url=redis_url, timeout=5, connect_timeout=5))
    counter = TokenCounter()
    try:
        await _sequential(memory, config, 500)            # warm up both
        await _sequential(redis_backend, config, 200)
        mem_times = await _sequential(memory, config, n)
        mem_rate = await _concurrent(memory, config, n, 16)
        red_times = await _sequential(redis_backend, config, max(n // 5, 1000))
        red_rate = await _concurrent(redis_backend, config, max(n // 2, 2000), 16)
        ex = _exchange(0)
        tok = []
        for _ in range(2000):
            t0 = time.perf_counter()
            prompt_tokens(counter, ex, 4.0)
            tok.append(time.perf_counter() - t0)
    finally:
        await redis_backend.close()
    lines = [
        "| limiter (4 limits: requests, tokens, budget, concurrency) | reserve p50 µs (1 at a time) | p99 µs | reserve+settle cycles/s, 16 concurrent |",
        "|---|---|---|---|",
        _row("memory", mem_times, mem_rate),
        _row("redis (loopback)", red_times, red_rate),
        _row(f"prompt token count ({len(PROMPT)} chars, o200k)", tok, None),
        "",
        f"redis / memory cycles/s at 16 concurrent: {red_rate / mem_rate:.1%}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_limits", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20000, help="checks per micro-benchmark series")
    parser.add_argument("--proxy", action="store_true", help="also compare the proxy's requests/s (bench.run)")
    parser.add_argument("--quick", action="store_true", help="bench.run --quick")
    args = parser.parse_args(argv)
    with RedisServer() as server:
        report = "## Limiter cost per check\n\n" + asyncio.run(micro(server.url, args.n)) + "\n"
        print(report, flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        (RESULTS / f"limits-{stamp}.md").write_text(report)
        if args.proxy:
            from bench import run
            from bench.targets import default_targets
            targets = [t for t in default_targets() if t.name != "passthrough"] + limit_targets(server.url)
            return run.main(["--quick"] if args.quick else [], targets=targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
