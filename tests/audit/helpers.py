"""Helpers for the audit and telemetry tests: finished Exchanges built directly (no socket)."""
from __future__ import annotations

import time
from types import SimpleNamespace

from proxy.exchange import Exchange, Identity, Usage
from proxy.textslots import TextSlot
from proxy.verdict import Finding, Verdict

POLICY = SimpleNamespace(name="default", digest="sha256:" + "ab" * 32)


def make_exchange(i: int = 0, *, user: str = "alice", decision: str = "allowed", model: str = "gpt-4o",
                  blocked_rule: str | None = None, scope=None, stream: bool = False,
                  wall: float | None = None) -> Exchange:
    now = time.monotonic()
    ex = Exchange(request_id=f"req-{i:04d}", method="POST", path="/v1/chat/completions", query="",
                  headers={"Authorization": "Bearer sk-secretsecretsecret",
                           "x-api-key": "sk-ant-secretsecret"},
                  client_ip="10.0.0.7", policy=POLICY)
    ex.started = now - 0.25
    ex.started_wall = (wall if wall is not None else time.time()) - 0.25
    ex.endpoint = SimpleNamespace(name="chat.completions")
    ex.identity = Identity(key_id="fp_3b1c9e", user=user, groups=("eng", "ml"), key_name="team-key")
    ex.model = model
    ex.stream = stream
    ex.upstream = SimpleNamespace(name="openai")
    ex.scope = scope
    ex.request_slots = [TextSlot("user", "message", "my email is <EMAIL_1>", index=0)]
    ex.response_slots = [TextSlot("assistant", "output", "hello alice@example.com", index=0)]
    ex.status = 200
    ex.decision = decision
    ex.usage = Usage(prompt_tokens=12, completion_tokens=30, reserved_tokens=64)
    ex.guard_seconds = {"injection": 0.0012, "pii": 0.0021}
    ex.upstream_started = now - 0.2
    ex.upstream_first_byte = now - 0.15
    ex.spans = [("guard:injection.on_request", now - 0.249, now - 0.248),
                ("upstream", now - 0.2, now - 0.01)]
    ex.finished = now
    ex.findings = [Finding("pii", ("pii.email",), 1.0, "masked", "request", {"EMAIL": 1})]
    if blocked_rule:
        ex.decision = "blocked"
        ex.status = 400
        ex.verdict = Verdict("injection", "prompt injection detected", (blocked_rule,))
        ex.findings.append(Finding("injection", (blocked_rule,), 7.0, "blocked", "request"))
    return ex


def write_log(directory, n: int = 10, *, key: str | None = "hmac:test-key", every: int = 4,
              max_bytes: int = 100_000_000, close: bool = True, **cfg):
    """Write ``n`` records synchronously (no event loop) and return the Writer."""
    from proxy.audit.config import compile_section
    from proxy.audit.signing import parse_key
    from proxy.audit.sinks import FileSink
    from proxy.audit.writer import Writer
    from proxy.audit.record import build_record

    conf = compile_section({"path": str(directory), "checkpointEvery": every,
                            "rotate": {"maxBytes": max_bytes}, **cfg})
    writer = Writer(conf, parse_key(key) if key else None, FileSink(conf.path))
    writer.start()
    for i in range(n):
        writer.enqueue(build_record(make_exchange(i, blocked_rule="inj.001" if i % 3 == 0 else None)))
        if max_bytes < 100_000_000:
            writer.flush()          # rotation is checked per flush
    writer.flush(closing=close)
    return writer
