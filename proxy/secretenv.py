"""Secrets that a policy names by their environment variable (a Redis password, PII keys).

`aifw policy check` runs where the secrets are not (a laptop, an image build, CI): while a check
compiles, an unset secret reads as a placeholder and its name is recorded, so the check warns
instead of failing. Serving reads the real value, and there a missing one is an error.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Mapping

# 32 bytes: a valid AES key too, so a check goes on to what else the section says
PLACEHOLDER = "aifw-policy-check-placeholder-32"
_CHECKING: ContextVar[list[str] | None] = ContextVar("aifw_secret_check", default=None)


def read(name: str, env: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    missing = _CHECKING.get()
    if not value and missing is not None:
        missing.append(name)
        return PLACEHOLDER
    return value


@contextmanager
def checking() -> Iterator[list[str]]:
    """Within: unset secrets read as a placeholder; the list collects their names."""
    token = _CHECKING.set([])
    try:
        yield _CHECKING.get()
    finally:
        _CHECKING.reset(token)
