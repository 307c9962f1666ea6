"""Operators applied to one detected value, through presidio-anonymizer where it fits.

presidio's own ``hash`` salts every call, so a value would hash differently per request: the
``hash`` operator here is a keyed HMAC-SHA256 instead, stable across requests and replicas
that share the key, and useless to anyone without it.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import regex

from .. import secretenv
from .vault import Vault

OPERATORS = ("replace", "redact", "mask", "hash", "encrypt", "block", "none")
HASH_HEX_CHARS = 24
ENCRYPTED = regex.compile(r"<ENC:([A-Z][A-Z0-9_]*):([A-Za-z0-9_\-]+=*)>")


@dataclass(frozen=True, slots=True)
class _Presidio:
    mask: Any
    redact: Any
    encrypt: Any
    decrypt: Any


_presidio: _Presidio | None = None


def presidio() -> _Presidio:
    """presidio-anonymizer's operators, imported on first use: with cryptography they are ~0.14 G
    instructions of imports that `aifw policy check` does not need. A policy compiled to serve
    loads them at once (guards/pii.py), so no request waits for the import."""
    global _presidio
    if _presidio is None:
        from presidio_anonymizer.operators import Decrypt, Encrypt, Mask, Redact
        _presidio = _Presidio(Mask(), Redact(), Encrypt(), Decrypt())
    return _presidio


@dataclass(frozen=True, slots=True)
class Keys:
    hash_key: bytes | None = None
    encrypt_key: bytes | None = None


def load_key(env_name: str, purpose: str, aes: bool = False) -> bytes:
    value = secretenv.read(env_name)
    if not value:
        raise ValueError(f"pii: operator {purpose} needs a key in the environment variable {env_name}")
    key = value.encode("utf-8")
    if aes and len(key) not in (16, 24, 32):
        raise ValueError(f"pii: {env_name} must be 16, 24 or 32 bytes for AES")
    return key


def apply(op: str, entity: str, value: str, vault: Vault, keys: Keys, restorable: bool) -> str:
    """The replacement text for ``value``; ``block`` and ``none`` never reach here."""
    if op == "replace":
        return vault.placeholder(entity, value, restorable)
    if op == "mask":
        keep = 4 if len(value) > 4 else 0
        return presidio().mask.operate(value, {"masking_char": "*", "chars_to_mask": len(value) - keep,
                                     "from_end": False})
    if op == "redact":
        return presidio().redact.operate(value, {})
    if op == "hash":
        digest = hmac.new(keys.hash_key or b"", f"{entity}\x00{value}".encode(), hashlib.sha256)
        return f"<{entity}#{digest.hexdigest()[:HASH_HEX_CHARS]}>"
    if op == "encrypt":
        return f"<ENC:{entity}:{presidio().encrypt.operate(value, {'key': keys.encrypt_key})}>"
    raise ValueError(f"unknown operator {op!r}")


def decrypt_text(text: str, key: bytes) -> tuple[str, int]:
    """Replace every ``<ENC:ENTITY:...>`` token in ``text`` with its plaintext."""
    count = 0
    decrypt = presidio().decrypt

    def swap(m: "regex.Match[str]") -> str:
        nonlocal count
        count += 1
        return decrypt.operate(m.group(2), {"key": key})

    return ENCRYPTED.sub(swap, text), count
