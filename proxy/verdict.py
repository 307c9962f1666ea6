"""Decisions are values: what a guard hook returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable


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


@dataclass(frozen=True, slots=True)
class RepairRequest:
    """A response guard asks the edge to send the request once more with the answer and its
    problem appended (``proxy.parsing.structured.repair_body``), and judges the new answer."""

    answer: Hashable                # which answer broke the format (its key in ``answers``)
    problem: str                    # what is wrong with it; never the answer's text
    failed: Finding                 # recorded when no new answer comes (the attempt failed)
    fallback: Verdict | None        # then: the block to answer with, or None (the answer passes)
