"""The audit records of a fixed set of exchanges through the real proxy with every guard on
(bench/policies/all-guards.yaml: PII masked and restored, audit at the redacted level), written
one a line without the fields that differ between runs (times, durations, process ids, the hash
chain). Run it in two checkouts and compare the files byte for byte: a change that must not alter
what the audit log keeps gives identical files.

    .venv/bin/python -m bench.audit_records /tmp/after.jsonl
    (cd /tmp/before && .venv/bin/python -m bench.audit_records /tmp/before.jsonl)
    cmp /tmp/before.jsonl /tmp/after.jsonl

The exchanges: seeded conversations of texts from tests/pii/corpus.py (the PII evaluation set,
the shared datasets, entity fragments), sent one at a time; half of them ask the fake provider
for an answer of corpus text around a placeholder, so answers are masked and restored too.
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp

from bench import procs
from bench.run import ROOT
from tests.pii.corpus import corpus

AUTH = {"authorization": "Bearer sk-test"}
# Differ from run to run whatever the code does.
VOLATILE = frozenset({"time", "ts", "timestamp", "latency", "latencies", "prev", "seq", "hash",
                      "request_id", "id", "durations", "started", "finished", "sig", "chain",
                      "pid", "seconds"})


def stable(value):
    if isinstance(value, dict):
        return {k: stable(v) for k, v in sorted(value.items())
                if k not in VOLATILE and not k.endswith(("_ms", "_us")) and "latenc" not in k}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


async def drive(url: str, count: int, seed: int) -> None:
    texts = corpus(1500, 9)
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            messages = [{"role": "system", "content": rng.choice(texts)}]
            for j in range(rng.randrange(1, 4)):
                messages.append({"role": ("user", "assistant")[j % 2], "content": rng.choice(texts)})
            if messages[-1]["role"] != "user":
                messages.append({"role": "user", "content": rng.choice(texts)})
            headers = {**AUTH, "x-request-id": f"req-{i}"}
            if rng.random() < 0.5:
                headers["x-fake-reply"] = quote(f"{rng.choice(texts)} <EMAIL_ADDRESS_1> {rng.choice(texts)}")
            async with session.post(url + "/v1/chat/completions", headers=headers,
                                    json={"model": "gpt-4o", "messages": messages}) as resp:
                await resp.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    audit, logs = Path(tempfile.mkdtemp(prefix="aifw-audit-")), Path(tempfile.mkdtemp(prefix="aifw-logs-"))
    up_port, port = procs.free_port(), procs.free_port()
    upstream = procs.start("upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port)],
                           {}, up_port, logs, ROOT)
    proxy = None
    try:
        assert procs.wait_ready(upstream, "/v1/models", AUTH) is None, upstream.log_tail()
        proxy = procs.start("proxy", [sys.executable, "-m", "proxy", "serve", "--policy",
                                      "bench/policies/all-guards.yaml", "--port", str(port)],
                            {"AIFW_UPSTREAM_URL": upstream.url + "/v1", "AIFW_AUDIT_DIR": str(audit)},
                            port, logs, ROOT)
        assert procs.wait_ready(proxy, "/v1/models", AUTH) is None, proxy.log_tail()
        asyncio.run(drive(proxy.url, args.requests, args.seed))
    finally:
        for service in (proxy, upstream):
            if service is not None:
                service.stop()     # the audit writer flushes on SIGTERM
    time.sleep(0.5)
    records = [json.loads(line) for path in sorted(glob.glob(str(audit / "*.jsonl")))
               for line in open(path, encoding="utf-8") if line.strip()]
    with open(args.out, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(stable(record), sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{len(records)} records -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
