"""The one mutable per-request object. Everything else is frozen."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .scancache import text_digest
from .textslots import TextSlot
from .verdict import Finding, Verdict


@dataclass(slots=True)
class Identity:
    key_id: str                     # fingerprint (pass-through) or virtual key id
    user: str | None = None         # end user (asserted only by trusted keys) or key owner
    groups: tuple[str, ...] = ()
    key_name: str | None = None
    models: Any = ()                # GlobSet of models this key may use; empty = any
    trusted: bool = False           # may assert end users
    virtual: bool = False           # proxy-issued key (provider key held by the proxy)
    verified: bool = True           # False: only attributed (the request was refused first)


@dataclass(slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None    # of prompt_tokens, read from the provider's prompt cache
    reserved_tokens: int = 0
    streamed_chars: int = 0         # fallback when the provider reports no usage


@dataclass(slots=True)
class Exchange:
    request_id: str
    method: str
    path: str
    query: str
    headers: Any                    # incoming headers (case-insensitive multidict)
    client_ip: str | None
    policy: Any                     # the compiled Policy that judges this exchange
    endpoint: Any = None            # proxy.endpoints.Endpoint
    raw_body: bytes = b""
    body: Any = None                # parsed JSON request body (dict) or None
    body_changed: bool = False      # a guard rewrote the body: re-serialise before forwarding
    identity: Identity | None = None
    scope: Any = None               # the compiled Scope whose guards run (or the base scope);
                                    # scope.overrides holds raw non-guard overrides (e.g. audit)
    model: str | None = None
    stream: bool = False
    route: Any = None               # compiled Route (its upstream targets, in order), when one matched
    upstream: Any = None            # compiled Upstream: the route's first, then the one that served
    upstream_model: str | None = None   # the model name sent upstream (a route may rename it)
    attempts: list = field(default_factory=list)   # proxy.resilience.attempts.Attempt, in order
    request_slots: list[TextSlot] = field(default_factory=list)
    parsed: bool = False            # body was recognised and parsed into slots
    # response side
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)   # extra headers aifw adds
    response_body: Any = None       # parsed JSON response (non-stream) or None
    response_slots: list[TextSlot] = field(default_factory=list)
    strip_usage_chunk: bool = False  # aifw added stream_options.include_usage: hide that chunk
    streamed: bool = False          # first byte already went to the client
    finish_reason: str | None = None
    # StreamText -> name of the tool whose call streams on that channel (set by the stream
    # processor before the call's first delta reaches the guards)
    tool_streams: dict = field(default_factory=dict)
    # decisions
    findings: list[Finding] = field(default_factory=list)
    verdict: Verdict | None = None
    # a response guard asks for another attempt (proxy.verdict.RepairRequest; the edge sends it)
    repair: Any = None
    decision: str = "allowed"       # allowed | blocked | masked | monitored | bypassed | error
    uninspected: list[str] = field(default_factory=list)  # reasons parts went uninspected
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None       # USD, set once the exchange is complete (proxy.cost)
    # per-guard private state (e.g. the PII vault), keyed by guard name
    state: dict[str, Any] = field(default_factory=dict)
    # timings (seconds, monotonic)
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    upstream_started: float | None = None
    upstream_first_byte: float | None = None
    finished: float | None = None
    guard_seconds: dict[str, float] = field(default_factory=dict)
    # calls of operator guard hooks: (hook, direction, outcome allow|block|modify|failed, seconds);
    # a tuple, so an exchange without hooks allocates nothing for it
    hook_calls: tuple[tuple[str, str, str, float], ...] = ()
    # (name, start, end) in time.monotonic(): guard hooks and the upstream call, for spans
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    # upstream answer text as produced (before response guards), captured only when
    # ``capture_text`` is set (audit level redacted/full)
    capture_text: bool = False
    response_text: list[str] = field(default_factory=list)
    # Judging offline (proxy/offline.py) collects what the guards worked with here, to explain
    # a verdict (slot scores); always None in the proxy.
    trace: Any = None
    # id(text) -> (text, its text_digest): see text_digest (None until a guard asks)
    digests: dict[int, tuple[str, bytes]] | None = None

    def text_digest(self, text: str) -> bytes:
        """``scancache.text_digest(text)``, computed once per text of this exchange: the PII
        guard, the injection guard and the token counter key their caches on the same texts
        (held here, so an id is never reused while its entry lives)."""
        digests = self.digests
        if digests is None:
            digests = self.digests = {}
        got = digests.get(id(text))
        if got is not None and got[0] is text:
            return got[1]
        digest = text_digest(text)
        digests[id(text)] = (text, digest)
        return digest

    def add_finding(self, finding: Finding) -> None:
        self.findings.append(finding)

    def mark_monitored(self) -> None:
        """A monitor-mode guard would have blocked: the record says so unless it says more."""
        if self.decision == "allowed":
            self.decision = "monitored"

    def mark_uninspected(self, reason: str) -> None:
        if reason not in self.uninspected:
            self.uninspected.append(reason)
