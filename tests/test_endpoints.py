"""resolve() remembers endpoints per (method, path): it must answer exactly as endpoint_of."""
from __future__ import annotations

import itertools

from proxy.endpoints import endpoint_of, resolve

PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
         "/v1/models", "/v1/models/gpt-4o", "/v1/models/a/b", "/openai/deployments/dep-1/chat/completions",
         "/openai/deployments/dep-2/chat/completions", "/openai/deployments/dep-1/embeddings",
         "/openai/deployments/dep-1/completions", "/openai/deployments/dep-1/responses", "/v1/files",
         "/", "/v1/chat/completions/", "/V1/chat/completions")


def test_resolve_answers_as_endpoint_of_for_every_method_and_path_repeatedly():
    for _ in range(3):   # the first round fills the memory, the others read it
        for method, path in itertools.product(("POST", "GET", "PUT", "DELETE"), PATHS):
            assert resolve(method, path) == endpoint_of(method, path), (method, path)


def test_the_memory_is_bounded():
    resolve.cache_clear()
    for i in range(1000):
        assert resolve("POST", f"/openai/deployments/d{i}/chat/completions").azure_deployment == f"d{i}"
    assert resolve.cache_info().currsize <= 256
