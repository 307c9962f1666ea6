"""Who is calling: a keyed fingerprint of a pass-through key, or a proxy-issued virtual key."""
from __future__ import annotations

import functools
import hmac
from typing import Any, Mapping

from .errors import ProxyError
from .exchange import Identity

# Headers that can carry a key, by dialect: OpenAI (Authorization), Azure (api-key), Anthropic.
KEY_HEADERS = ("authorization", "api-key", "x-api-key")


def client_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return _plain(token.strip())
    for name in ("api-key", "x-api-key"):
        value = headers.get(name)
        if value and value.strip():
            return _plain(value.strip())
    return None


def _plain(key: str) -> str:
    # aiohttp hands header bytes that are not UTF-8 over as lone surrogates, which no hash,
    # log or upstream request can encode: no provider issues such keys
    if not (key.isascii() and key.isprintable()):
        raise ProxyError(401, "invalid_api_key", "The API key holds characters that no API key has.")
    return key


def reject_malformed_headers(headers: Mapping[str, str]) -> None:
    """Any header that is not UTF-8 is refused before anything tries to encode it (hash,
    fingerprint, forward, write to the audit log): in a key header as the wrong key (401),
    elsewhere as a malformed request (400). Neither is ever quoted back."""
    if "".join(headers.values()).isascii():   # the usual request: one C-level test for all
        return
    for name, value in headers.items():
        if value.isascii():
            continue
        if name.lower() in KEY_HEADERS:
            _plain(value)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ProxyError(400, "invalid_request", "A request header is not valid UTF-8.") from None


def reject_ambiguous_keys(headers: Mapping[str, str], user_header: str) -> None:
    """Two different keys (or user assertions) in one request are refused: the caller would be
    identified by one and the upstream would be called with the other."""
    getall = getattr(headers, "getall", None)
    if getall:
        # one key line (the usual case) cannot disagree with itself: only more are compared
        if len(getall("authorization", ())) + len(getall("api-key", ())) + len(getall("x-api-key", ())) > 1:
            _one_key([(name, v) for name in KEY_HEADERS for v in getall(name, ())])
        if len(getall(user_header, ())) > 1:
            raise ProxyError(400, "invalid_request", f"The {user_header} header appears more than once.")
    else:
        _one_key([(name, headers[name]) for name in KEY_HEADERS if name in headers])


def _one_key(lines: list[tuple[str, str]]) -> None:
    values: set[str] = set()
    for name, value in lines:
        scheme, _, token = value.strip().partition(" ")
        values.add(token.strip() if name == "authorization" and scheme.lower() == "bearer" else value.strip())
    if len(values) > 1:
        raise ProxyError(400, "invalid_request", "The request carries more than one API key.")


@functools.lru_cache(maxsize=4096)
def fingerprint(secret: bytes, key: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, without an HMAC object per request. Cached: a caller
    # sends the same key on every request, and the HMAC (some 20k instructions, 1.5% of a no-scan
    # request) then costs a dict lookup. The cache holds the keys of recent callers in this
    # process's memory only (the process holds each while forwarding it anyway); nothing of it is
    # logged or written.
    return "fp_" + hmac.digest(secret, key.encode(), "sha256").hex()[:24]


def asserted_user(headers: Mapping[str, str], body: Any, user_header: str) -> str | None:
    value = headers.get(user_header)
    if value:
        return value[:256]
    if isinstance(body, dict):
        for field in ("user", "safety_identifier"):
            if isinstance(body.get(field), str) and body[field]:
                return body[field][:256]
        meta = body.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("user_id"), str) and meta["user_id"]:
            return meta["user_id"][:256]
    return None


def identify(policy, headers: Mapping[str, str]) -> Identity:
    cfg = policy.identity
    reject_ambiguous_keys(headers, cfg.user_header)
    key = client_key(headers)
    if cfg.mode == "virtualKeys":
        record = policy.keys.lookup(key) if key else None
        if record is None:
            raise ProxyError(401, "invalid_api_key",
                             "Incorrect API key provided. Use a key issued by this proxy (aifw keys create)."
                             if key else "No API key provided.")
        return Identity(key_id=record.id, user=record.user, groups=record.groups, key_name=record.name,
                        models=record.models, trusted=record.trusted, virtual=True)
    if key is None:
        if not cfg.allow_anonymous:
            raise ProxyError(401, "invalid_api_key", "No API key provided.")
        return Identity(key_id="anonymous", trusted=cfg.trust_passthrough_users)
    return Identity(key_id=fingerprint(cfg.fingerprint_secret, key), trusted=cfg.trust_passthrough_users)


def unverified_identity(policy, headers: Mapping[str, str]) -> Identity | None:
    """The caller of a request refused before (or while) its key was checked: the fingerprint of
    the key it presented, so the audit record still says who tried. None when no key could be
    read (malformed or ambiguous key headers). Grants nothing: only the record uses it."""
    try:
        reject_ambiguous_keys(headers, policy.identity.user_header)
        key = client_key(headers)
    except ProxyError:
        return None
    if key is None:
        return Identity(key_id="anonymous", verified=False)
    return Identity(key_id=fingerprint(policy.identity.fingerprint_secret, key), verified=False)


def caller_label(key: str | None, key_name: str | None, user: str | None,
                 verified: bool = True) -> str | None:
    """Who made a call, in one string for people reading the audit log: the key (a virtual key's
    name and id, or a pass-through key's fingerprint, or ``anonymous``), with the end user in
    front when one is known (a virtual key's owner, or a user a trusted key asserted). It holds
    the key's fingerprint or id, never the key, so ``--key`` filter values appear in it."""
    if not key:
        return None
    label = f"{key_name} ({key})" if key_name else key
    if not verified:
        label += " (unverified)"
    return f"{user} via {label}" if user else label


def apply_user_assertion(identity: Identity, headers: Mapping[str, str], body: Any, user_header: str) -> None:
    """Only trusted keys may say which end user a request is for; others are ignored."""
    if identity.trusted:
        user = asserted_user(headers, body, user_header)
        if user:
            identity.user = user
