"""The endpoints aifw understands, and how an incoming path maps to one."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str           # chat.completions, completions, embeddings, responses, models, messages
    kind: str           # chat | completions | embeddings | responses | models | messages | passthrough
    dialect: str        # openai | anthropic
    method: str
    upstream_path: str  # path after the provider's base URL (OpenAI style: without /v1)
    azure_deployment: str | None = None
    inspected: bool = True

    @property
    def has_body(self) -> bool:
        return self.method == "POST"


_OPENAI = {
    "/v1/chat/completions": ("chat.completions", "chat"),
    "/v1/completions": ("completions", "completions"),
    "/v1/embeddings": ("embeddings", "embeddings"),
    "/v1/responses": ("responses", "responses"),
}
_AZURE = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions|embeddings)$")
_AZURE_KIND = {"chat/completions": ("chat.completions", "chat"), "completions": ("completions", "completions"),
               "embeddings": ("embeddings", "embeddings")}
_MODEL = re.compile(r"^/v1/models/([^/]+)$")


@functools.lru_cache(maxsize=256)
def resolve(method: str, path: str) -> Endpoint | None:
    """The endpoint for ``method path``, or None when aifw does not know it. Remembered per
    distinct pair (an Endpoint is frozen, so one can serve every exchange): building the frozen
    dataclass cost ~12k instructions per request, 1% of a no-scan exchange. Bounded, so paths
    a client makes up only evict one another."""
    return endpoint_of(method, path)


def endpoint_of(method: str, path: str) -> Endpoint | None:
    """``resolve`` without the memory."""
    if method == "POST":
        hit = _OPENAI.get(path)
        if hit:
            return Endpoint(hit[0], hit[1], "openai", method, path[3:])
        if path == "/v1/messages":
            return Endpoint("messages", "messages", "anthropic", method, path)
        m = _AZURE.match(path)
        if m:
            name, kind = _AZURE_KIND[m.group(2)]
            return Endpoint(name, kind, "openai", method, "/" + m.group(2), azure_deployment=m.group(1))
    elif method == "GET":
        if path == "/v1/models":
            return Endpoint("models", "models", "openai", method, "/models")
        m = _MODEL.match(path)
        if m:
            return Endpoint("models", "models", "openai", method, path[3:])
    return None


def passthrough(method: str, path: str) -> Endpoint:
    upstream_path = path[3:] if path.startswith("/v1/") else path
    return Endpoint("passthrough", "passthrough", "openai", method, upstream_path, inspected=False)
