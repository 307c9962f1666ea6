"""Builders for the limits tests."""
from __future__ import annotations

from proxy.endpoints import resolve
from proxy.exchange import Exchange, Identity, Usage
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


def backend_state(backend):
    """A MemoryBackend's counters, copied: rate arrival times, budgets used, concurrency slots."""
    return (dict(backend.tat), {k: list(v) for k, v in backend.used.items()},
            {k: dict(v) for k, v in backend.slots.items()})


async def complete_one(rng, guards, opened) -> None:
    """Complete the same exchange in each of two guards fed the same generated traffic:
    ``opened`` holds each guard's exchanges in flight, in step. The usage (none, or random
    counts), the upstream start and the status are drawn once and given to both."""
    k = rng.randrange(len(opened[0]))
    exchanges = [o.pop(k) for o in opened]
    usage = rng.choice([Usage(), Usage(prompt_tokens=rng.randrange(500), completion_tokens=rng.randrange(800))])
    started, status = rng.choice([None, 1.0]), rng.choice([200, 500])
    for ex in exchanges:
        ex.usage = Usage(usage.prompt_tokens, usage.completion_tokens, reserved_tokens=ex.usage.reserved_tokens)
        ex.upstream_started, ex.status = started, status
    for guard, ex in zip(guards, exchanges):
        await guard.on_complete(ex)
