"""Audit costs: building a record, chaining it (canonical JSON + SHA-256), signing a
checkpoint (HMAC-SHA256, Ed25519), and the writer end to end (file, fsync per flush); with
--proxy, the proxy's requests/s with audit off vs on at level metadata through bench.run.

    .venv/bin/python -m bench.bench_audit               # micro-benchmark, ~15 s
    .venv/bin/python -m bench.bench_audit --proxy       # + proxy comparison (bench.run)
    .venv/bin/python -m bench.bench_audit --proxy --quick

For the lead's harness, ``audit_targets()`` returns the two aifw targets (audit off / metadata).
Ratios are measured in one run (house rule 5); absolute numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.audit.chain import Chain  # noqa: E402
from proxy.audit.config import compile_section  # noqa: E402
from proxy.audit.record import build_record, prepared_record  # noqa: E402
from proxy.audit.signing import generate_ed25519, parse_key, sign_checkpoint  # noqa: E402
from proxy.audit.sinks import FileSink  # noqa: E402
from proxy.audit.writer import Writer  # noqa: E402
from tests.audit.helpers import make_exchange  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def write_policy(name: str, audit: dict) -> Path:
    """policies/default.yaml with the given audit section, written under bench/results/."""
    base = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text())
    base.pop("$schema", None)
    base["audit"] = audit
    out = RESULTS / "audit" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(base, sort_keys=False))
    return out


def audit_targets():
    """The aifw targets for bench.run: audit off, and audit at level metadata (file sink)."""
    from bench.targets import aifw_target
    var = RESULTS / "audit" / "var"
    shutil.rmtree(var, ignore_errors=True)
    return [
        aifw_target("aifw-audit-off", str(write_policy("audit-off", {"enabled": False}))),
        aifw_target("aifw-audit-metadata", str(write_policy(
            "audit-metadata", {"level": "metadata", "path": str(var)})),
            env={"AIFW_AUDIT_SIGNING_KEY": "hmac:bench-key"}),
    ]


def per_call(fn, n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs, seconds per call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def micro() -> list[tuple[str, float]]:
    exchanges = [make_exchange(i, blocked_rule="inj.001" if i % 5 == 0 else None) for i in range(1000)]
    records = [build_record(ex) for ex in exchanges]

    chain = Chain()
    out = [
        ("build_record (metadata)", per_call(lambda i: build_record(exchanges[i % 1000]), 20000)),
        ("orjson.dumps only (no chain)", per_call(lambda i: orjson.dumps(dict(records[i % 1000])), 20000)),
        ("chain seal (canonical JSON + SHA-256)", per_call(lambda i: chain.seal(dict(records[i % 1000])), 20000)),
        ("loop per record: prepared_record (what submit does)",
         per_call(lambda i: prepared_record(exchanges[i % 1000]), 20000)),
    ]
    prepared = [prepared_record(ex) for ex in exchanges]
    out.append(("writer thread per record: seal_prepared (splice + SHA-256)",
                per_call(lambda i: chain.seal_prepared(prepared[i % 1000]), 20000)))
    hmac_signer = parse_key("hmac:bench-key")
    ed_signer = parse_key(generate_ed25519()[0])
    cp = {"v": 1, "t": "checkpoint", "time": "2025-01-01T00:00:00.000Z", "reason": "count",
          "records": 1000, "seq": 1, "prev": "0" * 64}
    out.append(("checkpoint sign HMAC-SHA256", per_call(lambda i: sign_checkpoint(dict(cp), hmac_signer), 20000)))
    out.append(("checkpoint sign Ed25519", per_call(lambda i: sign_checkpoint(dict(cp), ed_signer), 2000)))
    out.append(("Ed25519 per record (checkpointEvery 1000)", out[-1][1] / 1000))

    tmp = tempfile.mkdtemp()
    try:
        cfg = compile_section({"path": tmp, "checkpointEvery": 1000})
        writer = Writer(cfg, ed_signer, FileSink(tmp))
        writer.start()
        times = []
        for _ in range(5):
            for rec in records:
                writer.enqueue(dict(rec))
            t0 = time.perf_counter()
            writer.flush()                     # one batch of 1000: seal, sign, write, fsync
            times.append((time.perf_counter() - t0) / len(records))
        ptimes = []
        for _ in range(5):
            for rec in prepared:
                writer.enqueue(rec)
            t0 = time.perf_counter()
            writer.flush()
            ptimes.append((time.perf_counter() - t0) / len(prepared))
        writer.flush(closing=True)
        out.append(("writer flush per record (batch 1000, fsync, Ed25519)", min(times)))
        out.append(("writer flush per record (median of 5)", statistics.median(times)))
        out.append(("writer flush per prepared record (as the proxy queues them; batch 1000)", min(ptimes)))
        out.append(("writer flush per prepared record (median of 5)", statistics.median(ptimes)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", action="store_true", help="also run the proxy comparison")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    rows = micro()
    lines = ["| step | µs per call |", "|---|---|"]
    lines += [f"| {name} | {sec * 1e6:.2f} |" for name, sec in rows]
    seal = dict(rows)["chain seal (canonical JSON + SHA-256)"]
    dumps = dict(rows)["orjson.dumps only (no chain)"]
    lines.append(f"\nchaining costs {seal / dumps:.1f}x a plain orjson.dumps of the record "
                 f"(+{(seal - dumps) * 1e6:.2f} µs per record)")
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit-micro.md").write_text(report + "\n")
    if args.proxy:
        from bench import run
        from bench.targets import default_targets
        return run.main(["--quick"] if args.quick else [], targets=[
            t for t in default_targets() if t.name == "direct"] + audit_targets())
    return 0


if __name__ == "__main__":
    sys.exit(main())
