"""Small helpers shared by the end-to-end tests (SDK clients pointed at a running proxy)."""
from __future__ import annotations

import itertools

import aiohttp
import anthropic
import openai
import yaml

from tests.conftest import READINESS_TOKEN, minimal_policy

FAST_TIMEOUTS = {"connect": "1s", "firstByte": "1s", "streamIdle": "1s", "total": "5s"}


def oa(url: str, key: str = "sk-test", **kw) -> openai.AsyncOpenAI:
    # max_retries=0: a retried request would hide what the proxy answered the first time.
    return openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=10, **kw)


def ant(url: str, key: str = "sk-ant-test") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0, timeout=10)


async def readiness(url: str) -> tuple[int, dict]:
    """/readyz with the operators' token: status and detail."""
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/readyz", headers={"Authorization": f"Bearer {READINESS_TOKEN}"}) as r:
            return r.status, await r.json()


_AUDIT_DIRS = itertools.count()


def policy(**overrides) -> str:
    """minimal_policy with dict-merge of nested overrides applied on top.

    Each policy gets its own audit directory (under the test's AIFW_AUDIT_DIR), so a test may
    run several proxies: the audit log allows one writer per directory.
    """
    base = yaml.safe_load(minimal_policy())
    base["audit"] = {"path": "${AIFW_AUDIT_DIR}/p%d" % next(_AUDIT_DIRS)}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return yaml.safe_dump(base, sort_keys=False)


def fast_policy(**overrides) -> str:
    """A policy whose upstream timeouts are short, for timeout tests."""
    base = yaml.safe_load(policy(**overrides))
    for up in base["upstreams"].values():
        up["timeouts"] = dict(FAST_TIMEOUTS)
    return yaml.safe_dump(base, sort_keys=False)


MSG = [{"role": "user", "content": "hello there"}]
