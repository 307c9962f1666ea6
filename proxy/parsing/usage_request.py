"""Asking an OpenAI-dialect stream to report its usage, for token limits and for cost."""
from __future__ import annotations

from typing import Any

# Endpoints whose streams report usage only when asked with stream_options.include_usage.
USAGE_OPT_IN = ("chat", "completions")


def ask_for_usage(ex: Any) -> None:
    """OpenAI streams carry usage only on request: ask for it, and tell the core to hide the
    extra chunk from a client that did not ask."""
    body = ex.body
    endpoint = ex.endpoint
    if not ex.stream or not isinstance(body, dict) or endpoint is None or endpoint.kind not in USAGE_OPT_IN:
        return
    if endpoint.dialect != "openai" or getattr(ex.upstream, "provider", None) == "anthropic":
        return
    opts = body.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage") is True:
        return
    body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    ex.body_changed = True
    ex.strip_usage_chunk = True
