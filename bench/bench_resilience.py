"""Provider resilience costs: the fallback machinery on the happy path, and how long a failover
takes when the primary black-holes.

    .venv/bin/python -m bench.bench_resilience            # failover timing + proxy comparison (~2 min)
    .venv/bin/python -m bench.bench_resilience --failover # failover timing only (~20 s)

Happy path: bench.run (--quick) compares the bare aiohttp pass-through, aifw with
bench/policies/noscan.yaml (one upstream, no breaker) and bench/policies/fallback.yaml (the
same with a two-upstream route, retries, a retry budget and breakers), CPU ms per request and
requests/s in one interleaved run.

Failover: the primary is a listening socket whose accept queue is full, so the kernel drops
new SYNs (a black hole); the route falls back to a fake provider. Each request's latency is
compared with the same request straight to a route whose only upstream is the fake.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONNECT_TIMEOUT = 1.0


def black_hole() -> tuple[socket.socket, list[socket.socket], int]:
    """A listener with backlog 0 and its queue filled: further connects hang in SYN_SENT."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.2)
    return listener, fillers, port


async def failover(n: int) -> str:
    import aiohttp
    from aiohttp import web

    from proxy.app import create_app
    from proxy.reload import PolicyHolder
    from tests.fakes.provider import run_fake_provider

    listener, fillers, port = black_hole()
    timeouts = {"connect": f"{CONNECT_TIMEOUT}s", "firstByte": "10s"}
    policy = {"version": 1, "identity": {"mode": "passthrough", "fingerprintSecret": "b"},
              "audit": {"sink": "stdout"},
              "upstreams": {"dead": {"provider": "openai", "baseUrl": f"http://127.0.0.1:{port}/v1",
                                     "timeouts": timeouts},
                            "fake": {"provider": "openai", "baseUrl": "${FAKE}", "timeouts": timeouts}},
              "routes": [{"models": ["via-dead"], "upstreams": ["dead", "fake"]},
                         {"models": ["*"], "upstream": "fake"}]}
    tmp = ROOT / "bench" / "results" / "resilience"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "failover.yaml"
    path.write_text(yaml.safe_dump(policy))
    async with run_fake_provider() as fake:
        holder = PolicyHolder(str(path), env={**os.environ, "FAKE": fake.openai_url})
        runner = web.AppRunner(create_app(holder))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1/chat/completions"
        body = lambda model: {"model": model, "messages": [{"role": "user", "content": "hi"}]}  # noqa: E731
        direct, failed_over = [], []
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-bench"}) as http:
            for _ in range(n):
                for model, out in (("gpt-4o-mini", direct), ("via-dead", failed_over)):
                    t0 = time.perf_counter()
                    async with http.post(url, json=body(model)) as resp:
                        await resp.read()
                        assert resp.status == 200, resp.status
                    out.append(time.perf_counter() - t0)
        await runner.cleanup()
    listener.close()
    for s in fillers:
        s.close()
    d, f = statistics.median(direct), statistics.median(failed_over)
    return "\n".join([
        "| black-holed primary, connect timeout 1s | median s | max s |",
        "|---|---|---|",
        f"| straight to the fake | {d:.3f} | {max(direct):.3f} |",
        f"| primary black-holed, fallback to the fake | {f:.3f} | {max(failed_over):.3f} |",
        "",
        f"failover added {f - d:.3f}s median ({n} requests each; the connect timeout is {CONNECT_TIMEOUT:.0f}s)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_resilience", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failover", action="store_true", help="only the failover timing")
    parser.add_argument("-n", type=int, default=5, help="failover requests")
    args = parser.parse_args(argv)
    report = "## Failover to a fallback when the primary black-holes\n\n" + asyncio.run(failover(args.n)) + "\n"
    print(report, flush=True)
    if args.failover:
        return 0
    from bench import run
    from bench.targets import NOSCAN, PASSTHROUGH, Target, aifw_target
    audit = lambda name: {"AIFW_AUDIT_DIR": "bench/results/var-" + name}  # noqa: E731
    targets = [
        Target(PASSTHROUGH, ("{python}", "-m", "bench.passthrough", "--port", "{port}", "--upstream", "{upstream}")),
        aifw_target(NOSCAN, "bench/policies/noscan.yaml", audit(NOSCAN)),
        aifw_target("aifw-fallback", "bench/policies/fallback.yaml", audit("aifw-fallback")),
    ]
    return run.main(["--quick"], targets=targets)


if __name__ == "__main__":
    sys.exit(main())
