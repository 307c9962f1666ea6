"""The request shapes the benchmark sends (the same bytes to every target)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

# ~1 KB of messages: a system prompt and a user turn of ordinary prose.
_SYSTEM = "You are a careful assistant for an insurance company. Answer briefly and cite the policy section."
_USER = ("I moved house last month and my contents insurance still lists the old address. "
         "The new flat has a shared entrance, a bike store in the basement and a small balcony. ") * 5
MESSAGES = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER.strip()}]
AUTH = {"authorization": "Bearer sk-bench-0000000000000000000000000000"}


@dataclass(frozen=True)
class Workload:
    name: str
    connections: int
    stream: bool
    headers: dict

    def body(self) -> str:
        body: dict = {"model": "gpt-4o-mini", "messages": MESSAGES}
        if self.stream:
            body["stream"] = True
        return orjson.dumps(body).decode()


WORKLOADS = (
    Workload("chat c=1", 1, False, AUTH),
    Workload("chat c=16", 16, False, AUTH),
    Workload("chat c=64", 64, False, AUTH),
    Workload("stream50 c=1", 1, True, {**AUTH, "x-fake-chunks": "50"}),
    Workload("stream50 c=16", 16, True, {**AUTH, "x-fake-chunks": "50"}),
)
PATH = "/v1/chat/completions"
