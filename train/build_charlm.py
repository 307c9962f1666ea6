"""Build the character trigram table of ordinary English text (proxy/detection/charlm.npz).

    .venv/bin/python train/build_charlm.py

Source text: ``pydoc_data.topics`` (the language reference topics shipped with CPython, PSF
licence, ~465 KB of English prose and code examples). No evaluation or attack data is read.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pydoc_data.topics as topics  # noqa: E402

from proxy.detection import charlm  # noqa: E402


def main() -> int:
    text = " ".join(topics.topics[k] for k in sorted(topics.topics))
    nll = charlm.estimate(text)
    charlm.save(charlm.DEFAULT_TABLE, nll,
                f"char trigram (64 classes, add-0.1) over pydoc_data.topics, Python "
                f"{sys.version.split()[0]}, {len(text)} chars")
    print(f"wrote {charlm.DEFAULT_TABLE} ({charlm.DEFAULT_TABLE.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
