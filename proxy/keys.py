"""Proxy-issued virtual keys: a YAML keys file that stores only key hashes.

A key looks like ``aifw-<id>-<secret>``. The id finds the record; the SHA-256 of the whole key
is compared in constant time. Keys are 256-bit random, so a fast hash is enough (no password
stretching needed), and the file never holds anything that would let a reader call the proxy.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from . import yamlfast

from .globs import GlobSet

KEY_PREFIX = "aifw-"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    hash: str
    user: str | None
    groups: tuple[str, ...]
    models: GlobSet
    trusted: bool
    revoked: bool
    name: str | None


@dataclass(frozen=True, slots=True)
class KeyStore:
    path: str | None
    records: Mapping[str, KeyRecord]
    digest: str

    def lookup(self, key: str) -> KeyRecord | None:
        """The live record for ``key``, or None (unknown, malformed, wrong secret or revoked)."""
        if not key.startswith(KEY_PREFIX):
            return None
        key_id = key[len(KEY_PREFIX):].split("-", 1)[0]
        record = self.records.get(key_id)
        if record is None or record.revoked:
            return None
        if not hmac.compare_digest(record.hash, hash_key(key)):
            return None
        return record


EMPTY_KEYSTORE = KeyStore(None, {}, "")


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def parse_keys(data: Any, path: str) -> KeyStore:
    """Build a KeyStore from the parsed YAML of a keys file; raises ValueError on bad content."""
    if data is None:
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
        raise ValueError("a keys file is a mapping with a 'keys' list")
    allowed = {"id", "hash", "user", "groups", "models", "trusted", "revoked", "name", "created", "revokedAt"}
    records: dict[str, KeyRecord] = {}
    for i, item in enumerate(data.get("keys") or []):
        if not isinstance(item, dict):
            raise ValueError(f"keys[{i}]: must be a mapping")
        unknown = set(item) - allowed
        if unknown:
            raise ValueError(f"keys[{i}]: unknown key(s) {sorted(unknown)}")
        if not isinstance(item.get("id"), str) or not str(item.get("hash", "")).startswith("sha256:"):
            raise ValueError(f"keys[{i}]: needs an 'id' and a 'hash' of the form sha256:<hex>")
        if item["id"] in records:
            raise ValueError(f"keys[{i}]: duplicate id {item['id']!r}")
        records[item["id"]] = KeyRecord(
            id=item["id"], hash=item["hash"], user=item.get("user"),
            groups=tuple(item.get("groups") or ()), models=GlobSet.of(item.get("models") or ()),
            trusted=bool(item.get("trusted", False)), revoked=bool(item.get("revoked", False)),
            name=item.get("name"))
    return KeyStore(path, records, hashlib.sha256(yaml.safe_dump(data).encode()).hexdigest())


def load_keys(path: str) -> KeyStore:
    with open(path, "rb") as fh:
        raw = fh.read()
    return parse_keys(yamlfast.safe_load(raw) if raw.strip() else {}, path)


def _read_raw(path: str) -> dict:
    if not os.path.exists(path):
        return {"keys": []}
    with open(path, "r", encoding="utf-8") as fh:
        data = yamlfast.safe_load(fh) or {}
    data.setdefault("keys", [])
    return data


def _write_raw(path: str, data: dict) -> None:
    # Write-then-rename so the watching proxy never reads a half-written file.
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".keys-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# aifw keys file: hashes only. Manage with `aifw keys`.\n")
        yaml.safe_dump(data, fh, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def create_key(path: str, *, user: str, groups=(), models=(), trusted: bool = False,
               name: str | None = None) -> tuple[str, str]:
    """Add a new key to the file; return (key_id, key). The key itself is never stored."""
    data = _read_raw(path)
    existing = {k.get("id") for k in data["keys"]}
    while True:
        key_id = secrets.token_hex(6)
        if key_id not in existing:
            break
    key = f"{KEY_PREFIX}{key_id}-{secrets.token_urlsafe(32)}"
    record: dict[str, Any] = {"id": key_id, "hash": hash_key(key), "user": user,
                              "groups": list(groups), "created": int(time.time())}
    if models:
        record["models"] = list(models)
    if trusted:
        record["trusted"] = True
    if name:
        record["name"] = name
    data["keys"].append(record)
    parse_keys(data, path)  # never write a file the proxy would reject
    _write_raw(path, data)
    return key_id, key


def revoke_key(path: str, key_id: str) -> bool:
    """Revoke the key with this id, or else the one live key with this name (a name that two
    live keys share revokes nothing: the id says which)."""
    data = _read_raw(path)
    matches = [r for r in data["keys"] if r.get("id") == key_id]
    if not matches:
        matches = [r for r in data["keys"] if r.get("name") == key_id and not r.get("revoked")]
    if len(matches) != 1:
        return False
    matches[0]["revoked"] = True
    matches[0]["revokedAt"] = int(time.time())
    _write_raw(path, data)
    return True


def list_keys(path: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "hash"} for r in _read_raw(path)["keys"]]
