"""Fake prompt-attack classifiers for the injection guard's model escalation: a vLLM ``/classify``
endpoint and a Text Embeddings Inference ``/predict`` endpoint, on the fake provider's app
(``add_classifier_routes``). They speak the real wire shapes; the verdict is a test convention:
a text containing ``ATTACK_MARKER`` is an injection, anything else is benign. ``state.modes``
("slow:MS", "error:STATUS") applies as on the provider's other endpoints."""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

ATTACK_MARKER = "classify:attack"


def _attack(text: str) -> bool:
    return ATTACK_MARKER in text


async def _texts(request: web.Request, key: str) -> tuple[dict, list[str]] | web.Response:
    """The request body and its texts (``body[key]``, one or a list), or the error response the
    fake's modes ask for (after their delay)."""
    from .provider import STATE_KEY, parse_modes
    modes = parse_modes(list(request.app[STATE_KEY].modes))
    if modes.slow_ms:
        await asyncio.sleep(modes.slow_ms / 1000)
    if modes.error:
        return web.json_response({"error": {"message": "fake classifier error"}}, status=modes.error)
    body = orjson.loads(await request.read())
    return body, body[key] if isinstance(body[key], list) else [body[key]]


async def vllm_classify(request: web.Request) -> web.Response:
    got = await _texts(request, "input")
    if isinstance(got, web.Response):
        return got
    body, texts = got
    data = [{"index": i, "label": "INJECTION" if _attack(t) else "BENIGN",
             "probs": [0.03, 0.97] if _attack(t) else [0.98, 0.02], "num_classes": 2}
            for i, t in enumerate(texts)]
    return web.json_response({"id": "classify-fake", "object": "list", "model": body.get("model"),
                              "data": data, "usage": {"prompt_tokens": sum(len(t) // 4 for t in texts)}})


async def tei_predict(request: web.Request) -> web.Response:
    got = await _texts(request, "inputs")
    if isinstance(got, web.Response):
        return got
    return web.json_response([
        [{"label": "INJECTION", "score": 0.97}, {"label": "SAFE", "score": 0.03}] if _attack(t)
        else [{"label": "SAFE", "score": 0.98}, {"label": "INJECTION", "score": 0.02}]
        for t in got[1]])


def add_classifier_routes(app: web.Application) -> None:
    app.router.add_post("/classify", vllm_classify)
    app.router.add_post("/predict", tei_predict)
