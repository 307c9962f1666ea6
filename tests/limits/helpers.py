"""Builders for the limits tests."""
from __future__ import annotations

from proxy.endpoints import resolve
from proxy.exchange import Exchange, Identity
from proxy.textslots import TextSlot

_counter = iter(range(1, 1 << 30))


def make_exchange(user: str | None = "alice", key_id: str = "key-1", groups=(), model: str = "gpt-4o",
                  messages=("hello there",), path: str = "/v1/chat/completions", stream: bool = False,
                  body_extra: dict | None = None) -> Exchange:
    body = {"model": model, "messages": [{"role": "user", "content": m} for m in messages]}
    body.update(body_extra or {})
    if stream:
        body["stream"] = True
    ex = Exchange(request_id=f"req-{next(_counter)}", method="POST", path=path, query="",
                  headers={}, client_ip="127.0.0.1", policy=None)
    ex.endpoint = resolve("POST", path)
    ex.identity = Identity(key_id=key_id, user=user, groups=tuple(groups))
    ex.body = body
    ex.model = model
    ex.stream = stream
    ex.request_slots = [TextSlot("user", "message", m, body["messages"][i], "content", i)
                        for i, m in enumerate(messages)]
    return ex
