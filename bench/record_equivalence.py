"""Audit records of 20,000 random exchanges, built by this checkout and by another one, compared
byte for byte (the sealed lines: record builder, serialisation, chain). A tool for changes to
proxy/audit/record.py, chain.py and what they call, not a test: the other checkout is an older
commit.

    git archive main | tar -x -C /tmp/rec-before
    .venv/bin/python -m bench.record_equivalence --before /tmp/rec-before

Each checkout runs this file in its own interpreter (``--emit``), with its own ``proxy`` package
first on the path; the exchanges come from one seeded generator (here), built from that
checkout's Exchange class.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
LONG = "x" * 300


def exchanges(n: int, seed: int = 14):
    from proxy.exchange import Exchange, Identity, Usage
    from proxy.resilience.attempts import Attempt
    from proxy.textslots import TextSlot
    from proxy.verdict import Finding, Verdict
    rng = random.Random(seed)
    pick = rng.choice
    for i in range(n):
        started = rng.uniform(0, 1e5)
        ex = Exchange(request_id=f"req_{i:032x}", method="POST", path="/v1/chat/completions", query="",
                      headers={"authorization": "Bearer sk-secret-never-recorded"},
                      client_ip=pick((None, "10.0.0.7", "2001:db8::1", LONG)),
                      policy=SimpleNamespace(name=pick(("default", "p")), digest="sha256:" + "ab" * 32))
        ex.started = started
        ex.started_wall = pick((rng.uniform(1.6e9, 1.8e9), float(rng.randint(1.6e9, 1.8e9)),
                                rng.randint(1.6e9, 1.8e9) + 0.9999999))
        ex.endpoint = pick((None, SimpleNamespace(name="chat.completions"), SimpleNamespace(name="messages")))
        if rng.random() < 0.8:
            ex.identity = Identity(key_id=pick(("fp_3b1c9e", "anonymous", "vk_1")),
                                   user=pick((None, None, "alice", LONG, "\u00e9l\u00e8ve")),
                                   groups=pick(((), ("eng",), ("eng", LONG), tuple(f"g{k}" for k in range(40)))),
                                   key_name=pick((None, "team-key", LONG)), verified=rng.random() < 0.9)
        ex.model = pick((None, "gpt-4o", "gpt-4o-mini", LONG, "m\u2603\x00\"prev\":\"x"))
        ex.stream = rng.random() < 0.3
        ex.upstream = pick((None, SimpleNamespace(name="openai"), SimpleNamespace(name="azure")))
        ex.scope = pick((None, SimpleNamespace(name="interns", overrides={}), SimpleNamespace(name=None, overrides={})))
        for k in range(rng.choice((0, 1, 1, 1, 2, 3))):
            a = Attempt(pick(("openai", "azure")), pick((None, "gpt-4o", LONG)), started + k * 0.01)
            if rng.random() < 0.9:
                a.ended = a.started + rng.uniform(0, 2)
            a.status = pick((None, 200, 429, 500))
            a.error = pick((None, None, "timeout", "status"))
            a.served = rng.random() < 0.5
            a.repair = rng.random() < 0.1
            ex.attempts.append(a)
        ex.status = pick((None, 200, 400, 403, 429, 502, 504))
        ex.decision = pick(("allowed", "blocked", "masked", "monitored", "bypassed", "error"))
        ex.error = pick((None, None, None, "upstream_timeout", "said Bearer sk-abcdefghijkl no", LONG))
        ex.cost = pick((None, 0.0, rng.uniform(0, 1), 1e-9))
        ex.usage = Usage(prompt_tokens=pick((None, 12, 0)), completion_tokens=pick((None, 30)),
                         reserved_tokens=pick((0, 64)))
        ex.guard_seconds = pick(({}, {"access": rng.uniform(0, 1e-3)},
                                 {"injection": rng.uniform(0, 1e-2), "pii": 1.25e-5}))
        for _ in range(rng.choice((0, 0, 1, 2))):
            ex.findings.append(Finding(pick(("pii", "injection", "tools")), tuple(pick((("r1",), ("r1", "r2"), ()))),
                                       pick((1.0, 7.5, 0.0)), pick(("masked", "blocked", "would_block", "observed", "fault")),
                                       pick(("request", "response")), pick(({}, {"EMAIL": 2}, {3: 1})),
                                       pick(({}, {"tool": "search"}, {"path": LONG}))))
        if rng.random() < 0.2:
            ex.verdict = Verdict(pick(("injection", "access")), pick(("blocked", LONG)), ("PI-1",), status=400)
        for _ in range(rng.choice((0, 0, 1, 2))):
            ex.uninspected.append(pick(("response not inspectable", LONG, "media content")))
        if rng.random() < 0.8:
            ex.upstream_started = started + 0.001
            ex.upstream_first_byte = pick((None, started + 0.01))
            if rng.random() < 0.8:
                ex.spans.append(("upstream", started + 0.001, started + rng.uniform(0.01, 1)))
            if rng.random() < 0.2:
                ex.spans.append(("upstream:repair", started + 1, started + 1.5))
        ex.spans.append(("guard.access", started, started + 1e-5))
        ex.finished = started + rng.uniform(0.001, 3)
        ex.request_slots = [TextSlot("user", "message", pick(("hi", "mail a@b.c", LONG)), index=0)]
        ex.response_slots = [TextSlot("assistant", "output", pick(("ok", LONG)), index=0)]
        ex.response_text = pick(([], ["a", "b"]))
        yield ex, pick(("metadata", "metadata", "redacted", "full"))


def _prepared():
    """This checkout's way from an exchange to the bytes ``Chain.seal_prepared`` takes."""
    try:
        from proxy.audit.record import prepared_record
    except ImportError:      # a checkout from before 2026-12-06's auditrec: three parts
        from proxy.audit.chain import prepare_parts
        from proxy.audit.record import record_parts
        return lambda ex, level, redact: prepare_parts(*record_parts(ex, level, redact))
    return prepared_record


def emit(n: int, out: Path) -> None:
    from proxy.audit.chain import Chain
    prepared = _prepared()
    chain = Chain()
    with out.open("wb") as fh:
        for ex, level in exchanges(n):
            fh.write(chain.seal_prepared(prepared(ex, level, lambda e, t: t.upper())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="the other checkout (its proxy package is used)")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--emit", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emit:
        emit(args.n, Path(args.emit))
        return 0
    outs = []
    for tree in (ROOT, Path(args.before).resolve()):
        out = Path(f"/tmp/record-equivalence-{os.getpid()}-{len(outs)}.jsonl")
        env = {**os.environ, "PYTHONPATH": str(tree)}
        subprocess.run([sys.executable, __file__, "--emit", str(out), "-n", str(args.n)], env=env, cwd=tree,
                       check=True)
        outs.append(out)
    lines = [o.read_bytes().splitlines() for o in outs]
    differ = sum(a != b for a, b in zip(*lines)) + abs(len(lines[0]) - len(lines[1]))
    print(f"{len(lines[0])} records: {differ} differ; sha256 this {hashlib.sha256(outs[0].read_bytes()).hexdigest()[:16]}, "
          f"before {hashlib.sha256(outs[1].read_bytes()).hexdigest()[:16]}")
    for o in outs:
        o.unlink()
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
