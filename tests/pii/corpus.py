"""Texts for comparing a PII shortcut with the plain path it replaces: the PII evaluation set
and the other shared datasets (when they sit next to the repository), the benchmark bodies with
the answers the fake provider gives them, and seeded random texts built from entity fragments,
context words, placeholders and separators (tests/pii/test_pii_probe.py's fragments)."""
from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from bench.bodies import BODIES

_ROOT = Path(__file__).resolve().parents[2]
DATASETS = next((d for d in (_ROOT.parent / "shared" / "datasets",
                             _ROOT.parent.parent / "shared" / "datasets") if d.is_dir()), None)

FRAGMENTS = (
    "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000", "gb82west12345698765432", "536-22-8741", "536 22 8741", "SSN ",
    "192.168.1.20", "2001:db8::1", "fe80::", "12:30:45", "+44 20 7946 0958", "+49 (0)30 901820",
    "(0)", "(415) ", "555-0132", "(415) 555-0132", "07700 900461", "020 7946 0958", "06 12 34 56 78",
    "+1 415-555-0132 12", "0044 ", "001-", "98765 43210", "+91 98765 43210", "030 901820",
    " ext. 12", "x123", " extension 4", "#5", "2024-03-02", "12/03/1985", "12/03/2024 15",
    "20240302", "12345-6789", "10.0.19041", "1999-2004", "$ ", "€", "USD ",
    "born ", "Date of Birth: ", "NÉ le ", "DOB", "sk-proj-", "sk-ant-", "AKIA", "ghp_", "xoxb-",
    "_live_", "whsec_", "AIza", "-----BEGIN PRIVATE KEY-----", "eyJ", "password=", "PASSWORD: ",
    "api_key=", "https://u:p@h", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "maria.jensen@example.org", "a.b@c.de", "@",
    "call me on ", "phone: ", "Tel. ", "mobile ", "fax ", "order no. ", "invoice ", "account ",
    "ID ", "version ", "<PHONE_NUMBER_1>", "<EMAIL_ADDRESS_2>", "<CREDIT_CARD_1", "<",
    "٣٤٥", "١٢٣٤٥٦٧", "²", "０１２", "İ", "ß", "\u00a0", "\n", ". ", ", ", " ", " ", " ",
    "the ", "reference ", "(", ")", "and ", "Hello, ",
)
_CHARS = "0123456789 -./()+:#x_@=AaBbKkSs\u0663"


def _dataset_texts(every: int) -> list[str]:
    rows: list[str] = []
    for path in sorted(DATASETS.glob("*/*.jsonl")) if DATASETS else ():
        with open(path, encoding="utf-8") as fh:
            step = 1 if path.parent.name == "pii" else every
            rows += [json.loads(line)["text"] for i, line in enumerate(fh) if i % step == 0]
    return rows


def _bench_texts() -> list[str]:
    texts: list[str] = []
    for name in sorted(BODIES):
        for n in (1, 100123, 4155550132):
            for msg in BODIES[name]:
                content = msg.get("content")
                if isinstance(content, str):
                    text = content.replace("#REQ#", str(n))
                    texts += [text, "You said: " + text]
    return texts


def random_texts(count: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randrange(1, 16)):
            if rng.random() < 0.75:
                parts.append(rng.choice(FRAGMENTS))
            else:
                parts.append("".join(rng.choice(_CHARS) for _ in range(rng.randrange(1, 7))))
        out.append("".join(parts))
    return out


@lru_cache(maxsize=None)
def corpus(random_count: int = 6000, every: int = 3) -> tuple[str, ...]:
    return tuple(_bench_texts() + _dataset_texts(every) + random_texts(random_count))
