"""Instructions per call of the gibberish-suffix signal and its parts on chat1k's new user turn
(raw, and with the PII guard's phone placeholder), counted by callgrind in this process: the
signal is ~5% of an every-guard chat1k request, too little to follow in bench.instructions' 1%
noise.

    .venv/bin/python -m bench.suffix_instructions

The process runs itself again under ``valgrind --tool=callgrind --instr-atstart=no``; per part,
two warm calls, the collector frozen, then instrumentation on around ``REPS`` calls (the
instrumentation toggles add ~1 k a call: the "empty" row).
"""
from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPS = 400


def _measure(out_dir: Path) -> None:
    from bench.bodies import CHAT_1K
    from bench.instructions import _window
    from proxy.detection import charclass, charlm, normalize
    raw = CHAT_1K[-1]["content"].replace("#REQ#", "48213")
    masked = raw.replace("07700 900461", "<PHONE_NUMBER_1>")
    pid = os.getpid()
    for label, text in (("raw", raw), ("masked", masked)):
        last = text.rstrip().rsplit("\n", 1)[-1][-normalize.SUFFIX_CHARS:]
        parts = {
            "empty": lambda: None,
            "gibberish_suffix": lambda: normalize.gibberish_suffix(text, 0),
            "tail_contrast": lambda: charlm.tail_contrast(last),
            "glue_count(tail)": lambda: charclass.glue_count(last[-160:]),
            "odd_count(tail)": lambda: charclass.odd_count(last[-160:]),
        }
        for name, call in parts.items():
            call()
            call()
            gc.collect()
            gc.freeze()

            def work(call=call) -> None:
                for _ in range(REPS):
                    call()
            total, _seconds = _window(pid, out_dir, work)
            gc.unfreeze()
            print(f"{label:7} {name:18} {total / REPS / 1e3:8.1f} k instructions/call", flush=True)


def main() -> int:
    if os.environ.get("AIFW_SUFFIX_INSTRUCTIONS_CHILD"):
        out_dir = Path(os.environ["AIFW_SUFFIX_INSTRUCTIONS_CHILD"])
        _measure(out_dir)
        return 0
    out_dir = Path(tempfile.mkdtemp(prefix="suffix-instr-"))
    try:
        env = dict(os.environ, AIFW_SUFFIX_INSTRUCTIONS_CHILD=str(out_dir))
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out_dir}/callgrind.out.%p", sys.executable, "-m",
               "bench.suffix_instructions"]
        return subprocess.run(cmd, env=env, stderr=subprocess.DEVNULL, check=False).returncode
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
