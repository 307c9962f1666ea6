"""Record building: fields from the Exchange, levels, scope overrides, no secrets, the schema."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import orjson
import pytest

from proxy.audit.chain import Chain
from proxy.audit.config import compile_section
from proxy.audit.record import build_record, scrub_secrets
from proxy.audit.runtime import AuditLog
from proxy.services import Services
from tests.audit.helpers import make_exchange

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "audit-record.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def sealed(rec: dict) -> dict:
    line = Chain().seal(rec)
    return orjson.loads(line)


def test_metadata_record_carries_every_field_and_no_text():
    ex = make_exchange(7, blocked_rule="inj.001")
    ex.client_ip = "192.0.2.1"
    ex.uninspected.append("pii: guard failed open")
    rec = build_record(ex, "metadata")
    assert rec["id"] == "req-0007" and rec["user"] == "alice" and rec["key"] == "fp_3b1c9e"
    assert rec["groups"] == ["eng", "ml"] and rec["client"] == "192.0.2.1"
    assert rec["caller"] == "alice via team-key (fp_3b1c9e)"
    assert rec["endpoint"] == "chat.completions" and rec["model"] == "gpt-4o"
    assert rec["upstream"] == "openai" and rec["status"] == 400
    assert rec["decision"] == "blocked" and rec["reason"] == "prompt injection detected"
    assert rec["verdict"] == {"guard": "injection", "code": "content_filter", "status": 400,
                              "rules": ["inj.001"]}
    assert {"guard": "pii", "rules": ["pii.email"], "score": 1.0, "action": "masked",
            "direction": "request", "counts": {"EMAIL": 1}} in rec["findings"]
    assert rec["tokens"] == {"reserved": 64, "prompt": 12, "completion": 30}
    assert abs(rec["latency"]["total"] - 0.25) < 1e-6
    assert abs(rec["latency"]["upstream"] - 0.19) < 1e-6
    assert rec["latency"]["guards"] == {"injection": 0.0012, "pii": 0.0021}
    assert rec["policy"] == {"name": "default", "digest": "sha256:" + "ab" * 32}
    assert rec["uninspected"] == ["pii: guard failed open"]
    assert "content" not in rec
    text = orjson.dumps(rec).decode()
    assert "<EMAIL_1>" not in text and "example.com" not in text
    assert VALIDATOR.is_valid(sealed(rec)), list(VALIDATOR.iter_errors(sealed(rec)))


def test_no_secret_reaches_a_record_even_from_an_error_string():
    ex = make_exchange(1)
    ex.decision, ex.status = "error", 502
    ex.error = "upstream said: invalid key Bearer sk-proj-abcdefghijklmnop (api_key=sk-abcdef123456)"
    text = orjson.dumps(build_record(ex, "full")).decode()
    for secret in ("sk-secretsecretsecret", "sk-ant-secretsecret", "sk-proj-abcdefghijklmnop",
                   "sk-abcdef123456", "Authorization"):
        assert secret not in text
    assert "[redacted]" in text


def test_scrub_keeps_ordinary_text():
    assert scrub_secrets("connection refused") == "connection refused"


def test_redacted_level_passes_the_answer_through_the_pii_redactor():
    ex = make_exchange(2)
    calls = []

    def redactor(exchange, text):
        calls.append(exchange.request_id)
        return text.replace("alice@example.com", "<EMAIL_1>")

    rec = build_record(ex, "redacted", redactor)
    assert rec["content"]["request"] == [{"role": "user", "kind": "message", "index": 0,
                                          "text": "my email is <EMAIL_1>"}]
    assert rec["content"]["response"] == [{"index": 0, "text": "hello <EMAIL_1>"}]
    assert calls == ["req-0002"]
    assert VALIDATOR.is_valid(sealed(rec))


def test_redacted_stream_uses_the_captured_answer_text():
    ex = make_exchange(3, stream=True)
    ex.response_text = ["hello ", "alice@example.com"]
    rec = build_record(ex, "redacted", lambda e, t: t.replace("alice@example.com", "<EMAIL_1>"))
    assert rec["content"]["response"] == [{"index": 0, "text": "hello <EMAIL_1>"}]


def test_full_level_stores_the_answer_as_is():
    ex = make_exchange(4)
    rec = build_record(ex, "full", lambda e, t: "SHOULD NOT BE CALLED")
    assert rec["content"]["response"] == [{"index": 0, "text": "hello alice@example.com"}]


async def test_scope_override_raises_the_level_and_turns_on_capture(tmp_path):
    log = AuditLog(compile_section({"path": str(tmp_path)}), Services())
    await log.start()
    try:
        plain = make_exchange(5)
        log.prepare(plain)
        assert plain.capture_text is False
        scoped = make_exchange(6, scope=SimpleNamespace(name="interns",
                                                        overrides={"audit": {"level": "full"}}))
        log.prepare(scoped)
        assert scoped.capture_text is True
        assert log.level_for(scoped) == "full"
    finally:
        await log.close()


async def test_submit_uses_the_registered_redactor(tmp_path):
    services = Services()
    services.set("pii_redactor", lambda ex, text: text.replace("alice@example.com", "<EMAIL>"))
    log = AuditLog(compile_section({"path": str(tmp_path), "level": "redacted"}), services)
    await log.start()
    log.submit(make_exchange(8))
    await log.close()
    lines = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("audit-*.jsonl")))
    assert b"hello <EMAIL>" in lines and b"alice@example.com" not in lines


# the generator draws whole-second times with randint(1.6e9, ...), which Python 3.11 warns about
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_prepared_records_seal_to_the_same_bytes_as_record_dicts():
    """submit() serialises records on the loop (prepared_record: one orjson call with the
    places of prev and seq held); the writer's splice of seq/prev into those places must give
    exactly the canonical line of the record dict (Chain.seal), for the hand-made odd cases
    and 3,000 generated exchanges of bench.record_equivalence (every level, capped fields,
    findings, verdicts, streams, errors that look like secrets or chain fields)."""
    import numpy as np
    from bench.record_equivalence import exchanges
    from proxy.audit.record import prepared_record
    from proxy.verdict import Finding

    exs = [make_exchange(i, blocked_rule="inj.001" if i % 3 == 0 else None, stream=i % 2 == 0)
           for i in range(6)]
    exs[1].error = "Bearer sk-abcdefghijkl upstream failed"
    exs[2].identity = None
    exs[3].scope = SimpleNamespace(name="interns", overrides={})
    exs[4].findings.append(Finding("d", ("d.1",), np.float64(0.75), "observed", "request", {1: 2}))
    exs[5].model = "gpt-4o\u00e9\u2603\x00\"prev\":\"x"
    exs[5].error = '","seq":1,"prev":"\x00'
    cases = [(ex, level) for ex in exs for level in ("metadata", "redacted", "full")]
    cases += exchanges(3000, seed=5)
    by_dict, by_prepared = Chain(), Chain(7, "ab" * 32)
    by_dict.seq, by_dict.prev = 7, "ab" * 32
    for ex, level in cases:
        redact = lambda e, t: t.upper()   # noqa: E731
        line = by_prepared.seal_prepared(prepared_record(ex, level, redact))
        assert line == by_dict.seal(build_record(ex, level, redact))
    assert (by_prepared.seq, by_prepared.prev) == (by_dict.seq, by_dict.prev)


def test_an_unserialisable_record_is_queued_as_its_dict():
    """prepared_record returns the record dict, without the held places, when orjson refuses it
    (a non-string key, as canonical() refuses it): the writer then counts it as lost."""
    from proxy.audit.record import prepared_record

    ex = make_exchange(1)
    ex.guard_seconds = {"pii": 0.5, 3: 0.25}
    record = prepared_record(ex, "metadata")
    assert type(record) is dict and record == build_record(ex, "metadata")
    with pytest.raises(TypeError):
        Chain().seal(record)


def test_iso_time_matches_strftime_and_the_millisecond_format():
    """iso_time caches the second's prefix and the millisecond suffixes: every instant, around
    second boundaries and before 1970 too, must read as the formula says."""
    import random
    import time as _time
    from proxy.audit.record import iso_time
    rng = random.Random(3)
    walls = [rng.uniform(0, 2e9) for _ in range(5000)] + [rng.uniform(-1e6, 0) for _ in range(200)]
    walls += [s + f for s in (0, 1, 1_765_000_000, -7) for f in (0.0, 0.0004, 0.0009999, 0.5, 0.9994, 0.99999999)]
    for wall in walls:
        secs = int(wall)
        plain = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{int((wall - secs) * 1000):03d}Z"
        assert iso_time(wall) == plain, wall


def test_an_upstream_duration_passed_in_is_the_one_computed():
    """PolicyHolder.record walks the spans once for the record and the metrics and passes the
    result in; the record is the one build_record makes without it."""
    from proxy.durations import upstream_seconds

    for i in range(4):
        ex = make_exchange(i)
        if i == 1:
            ex.spans = []
        if i == 2:
            ex.spans, ex.upstream_started = [], None
        assert build_record(ex, "full", upstream=upstream_seconds(ex)) == build_record(ex, "full")
