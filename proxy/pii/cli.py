"""``aifw pii decrypt``: turn ``<ENC:ENTITY:...>`` tokens back into values, for authorised
reviewers holding the AES key (from the environment, never from a flag that lands in shell
history)."""
from __future__ import annotations

import argparse
import sys

from .operators import decrypt_text, load_key


def register(subparsers: "argparse._SubParsersAction") -> None:
    pii = subparsers.add_parser("pii", help="PII tools")
    sub = pii.add_subparsers(dest="pii_command", required=True)
    dec = sub.add_parser("decrypt", help="decrypt <ENC:...> tokens written by the encrypt operator")
    dec.add_argument("files", nargs="*", help="files to read (default: standard input)")
    dec.add_argument("--key-env", default="AIFW_PII_ENCRYPTION_KEY",
                     help="environment variable holding the AES key (default AIFW_PII_ENCRYPTION_KEY)")
    dec.set_defaults(func=decrypt_command)


def decrypt_command(args: argparse.Namespace) -> int:
    try:
        key = load_key(args.key_env, "decrypt", aes=True)
    except ValueError as exc:
        print(f"aifw pii decrypt: {exc}", file=sys.stderr)
        return 2
    texts = [open(p, encoding="utf-8").read() for p in args.files] if args.files else [sys.stdin.read()]
    for text in texts:
        try:
            plain, _ = decrypt_text(text, key)
        except Exception:  # a wrong key or a damaged token: say so without echoing data
            print("aifw pii decrypt: a token could not be decrypted (wrong key or damaged token)", file=sys.stderr)
            return 1
        sys.stdout.write(plain)
    return 0
