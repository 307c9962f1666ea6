"""The JSON a hook receives and answers (contract version 1).

aifw POSTs, per call::

    {"version": 1, "hook": "support-guard", "direction": "request" | "answer",
     "requestId": "req_...", "endpoint": "chat.completions", "model": "gpt-4o", "stream": false,
     "policy": "default", "scope": "support-bots",
     "identity": {"key": "<key fingerprint or virtual key id>", "keyName": ..., "virtual": bool,
                  "user": ..., "groups": [...]},
     "slots": [{"id": 0, "role": "user", "kind": "message", "index": 0, "text": "..."}]}

and reads one of::

    {"action": "allow"}
    {"action": "block", "reason": "...", "rule": "..."}       # reason and rule optional
    {"action": "modify", "slots": [{"id": 0, "text": "..."}]}  # only the slots to change

Anything else (another action, an id that was not sent, a text that is not a string, a rule that
is not a short identifier) breaks the contract and counts as a failed call. Fields may be added
to both sides within version 1; a hook must ignore fields it does not know.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..bounded import cap
from ..textslots import TextSlot

VERSION = 1
ACTIONS = ("allow", "block", "modify")
RULE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_REASON = 200      # characters of a block reason kept (client message, audit record)


class HookAnswerError(ValueError):
    """The hook answered something outside the contract."""


@dataclass(frozen=True, slots=True)
class Decision:
    action: str                                   # allow | block | modify
    reason: str = ""
    rule: str | None = None
    texts: dict[int, str] = field(default_factory=dict)    # modify: slot id -> replacement


def request_body(ex: Any, hook: str, direction: str, slots: Sequence[tuple[int, TextSlot]]) -> dict:
    ident = ex.identity
    identity = None if ident is None else {
        "key": ident.key_id, "keyName": ident.key_name, "virtual": ident.virtual,
        "user": ident.user, "groups": list(ident.groups)}
    return {
        "version": VERSION, "hook": hook, "direction": direction, "requestId": ex.request_id,
        "endpoint": getattr(ex.endpoint, "name", None), "model": ex.model, "stream": bool(ex.stream),
        "policy": getattr(ex.policy, "name", None), "scope": getattr(ex.scope, "name", None),
        "identity": identity,
        "slots": [{"id": i, "role": s.role, "kind": s.kind, "index": s.index, "text": s.text}
                  for i, s in slots],
    }


def parse_answer(answer: Any, ids: set[int]) -> Decision:
    """The hook's decision; HookAnswerError when the answer is not in the contract."""
    if not isinstance(answer, dict) or answer.get("action") not in ACTIONS:
        raise HookAnswerError("no action among allow, block, modify")
    action = answer["action"]
    if action == "allow":
        return Decision("allow")
    if action == "block":
        reason, rule = answer.get("reason", ""), answer.get("rule")
        if not isinstance(reason, str) or (rule is not None and not (isinstance(rule, str) and RULE.fullmatch(rule))):
            raise HookAnswerError("block: reason must be text, rule a short identifier")
        return Decision("block", cap(reason, MAX_REASON), rule)
    slots = answer.get("slots")
    if not isinstance(slots, list):
        raise HookAnswerError("modify: slots must be a list")
    texts: dict[int, str] = {}
    for item in slots:
        sid = item.get("id") if isinstance(item, dict) else None
        if type(sid) is not int or sid not in ids or not isinstance(item.get("text"), str):
            raise HookAnswerError("modify: each slot needs an id that was sent and a text")
        texts[sid] = item["text"]
    return Decision("modify", texts=texts)
