"""Checkpoint signatures: HMAC-SHA256 or Ed25519, key from the environment.

Key formats (the value of AIFW_AUDIT_SIGNING_KEY, or the variable the policy names):
- ``ed25519:<base64 of the 32-byte private seed>`` (``aifw audit keygen`` prints one)
- ``hmac:<secret>`` or any other string: HMAC-SHA256 with the string's UTF-8 bytes
- a PEM-encoded Ed25519 private key
Verification of Ed25519 checkpoints needs only the public key (``ed25519-pub:<base64>``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .chain import canonical


def _b64d(text: str) -> bytes:
    text = text.strip()
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class Signer:
    alg: str                       # "hmac-sha256" | "ed25519"
    kid: str                       # key id: a fingerprint, never the key
    secret: bytes = b""            # HMAC secret
    private: Ed25519PrivateKey | None = None
    public: Ed25519PublicKey | None = None

    def sign(self, message: bytes) -> str:
        if self.alg == "hmac-sha256":
            return _b64e(hmac.digest(self.secret, message, "sha256"))
        if self.private is None:
            raise ValueError("an Ed25519 public key cannot sign")
        return _b64e(self.private.sign(message))

    def verify(self, message: bytes, signature: str) -> bool:
        try:
            sig = _b64d(signature)
        except (ValueError, TypeError):
            return False
        if self.alg == "hmac-sha256":
            return hmac.compare_digest(sig, hmac.digest(self.secret, message, "sha256"))
        try:
            self.public.verify(sig, message)
            return True
        except InvalidSignature:
            return False


def _ed25519(private: Ed25519PrivateKey | None, public: Ed25519PublicKey) -> Signer:
    kid = hashlib.sha256(_raw_public(public)).hexdigest()[:16]
    return Signer("ed25519", kid, private=private, public=public)


def parse_key(spec: str) -> Signer:
    """A Signer from a key spec (see the module doc). Raises ValueError on a malformed key."""
    spec = spec.strip()
    if spec.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(spec.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("PEM signing key must be Ed25519")
        return _ed25519(key, key.public_key())
    if spec.startswith("ed25519:"):
        seed = _b64d(spec[8:])
        if len(seed) != 32:
            raise ValueError("ed25519 key must be 32 bytes (base64)")
        key = Ed25519PrivateKey.from_private_bytes(seed)
        return _ed25519(key, key.public_key())
    if spec.startswith("ed25519-pub:"):
        return _ed25519(None, Ed25519PublicKey.from_public_bytes(_b64d(spec[12:])))
    secret = (spec[5:] if spec.startswith("hmac:") else spec).encode()
    if not secret:
        raise ValueError("empty HMAC secret")
    kid = hashlib.sha256(b"aifw-audit-hmac-kid:" + secret).hexdigest()[:16]
    return Signer("hmac-sha256", kid, secret=secret)


def generate_ed25519() -> tuple[str, str]:
    """(private spec for AIFW_AUDIT_SIGNING_KEY, public spec for `aifw audit verify --key`)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return "ed25519:" + _b64e(seed), "ed25519-pub:" + _b64e(_raw_public(key.public_key()))


def signing_message(checkpoint: dict) -> bytes:
    """What a checkpoint signature covers: the checkpoint without its hash and signature.
    It includes ``seq`` and ``prev``, so it pins the whole chain before it."""
    return canonical({k: v for k, v in checkpoint.items() if k not in ("hash", "sig")})


def sign_checkpoint(checkpoint: dict, signer: Signer | None) -> None:
    """Add ``sig`` to a checkpoint that already has seq and prev."""
    if signer is None:
        checkpoint["sig"] = None
        return
    checkpoint["sig"] = {"alg": signer.alg, "kid": signer.kid,
                         "value": signer.sign(signing_message(checkpoint))}
