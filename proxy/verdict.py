"""Decisions are values: what a guard hook returns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Verdict:
    """A guard's decision to stop an exchange.

    Before the first byte of the response reaches the client this becomes an HTTP error in
    OpenAI's error shape; after it, the stream ends with a final chunk whose finish_reason is
    ``finish_reason`` and then ``[DONE]``.
    """

    guard: str
    message: str
    rule_ids: tuple[str, ...] = ()
    status: int = 400
    code: str = "content_filter"
    type: str = "invalid_request_error"
    headers: tuple[tuple[str, str], ...] = ()
    finish_reason: str = "content_filter"
    # A whole (non-streamed) answer this verdict refuses is still delivered as an answer (200)
    # with its content and calls removed and ``finish_reason``: how a stream it refuses ends too
    # (the tools guard's refused calls). Otherwise the client gets the HTTP error above.
    in_answer: bool = False


def block_message(v: Verdict) -> str:
    """What the client reads: the guard's message, then the rule ids of a content block, named
    here once for every guard (guards' messages do not list them)."""
    if v.rule_ids and v.code == "content_filter":
        return f"{v.message} (rules: {', '.join(dict.fromkeys(v.rule_ids))})"
    return v.message


@dataclass(slots=True)
class Finding:
    """Something a guard noticed: rule ids with scores, counts. Never the matched text."""

    guard: str
    rule_ids: tuple[str, ...] = ()
    score: float = 0.0
    action: str = "observed"   # observed | blocked | would_block | masked | restored | cut
    direction: str = "request"  # request | response
    counts: dict = field(default_factory=dict)
    # What the decision is about, named by the application or the policy, never prompt text:
    # {"tool": "fetch_url", "path": "$.url"}, {"hook": "classifier", "reason": "..."}.
    detail: dict = field(default_factory=dict)
