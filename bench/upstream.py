"""The fake provider (tests/fakes/provider.py) in its own process, recording off.

    python -m bench.upstream --port 9000
"""

from __future__ import annotations

import argparse
import asyncio

from tests.fakes.provider import FakeState, run_fake_provider


async def serve(host: str, port: int) -> None:
    # Recording off: a benchmark sends hundreds of thousands of requests.
    async with run_fake_provider(FakeState(record=False), host=host, port=port) as fake:
        print(f"listening {fake.url}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
