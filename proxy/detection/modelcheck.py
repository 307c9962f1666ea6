"""`aifw policy check` of the injection model file, without numpy when these bytes passed before.

Loading the model (model.load) imports numpy (~70 ms) and inflates ~0.4 MB (~10 ms) for each
policy that names it; a check only needs to know that it loads. A successful load is remembered
in the compiled cache (proxy/precompiled.py) under the file's bytes and the code digest (the
detection package, numpy's installed files), so an unchanged model file under unchanged code
is known to load; anything else is loaded as a start would load it, and a failure is never
remembered, so a broken file is reported on every check with the error model.load gives.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import precompiled
from ..policy.sources import Reader, read_plain

if TYPE_CHECKING:
    from .model import LinearModel

DEFAULT_MODEL = Path(__file__).resolve().parent / "injection_model.npz"
KIND = "modelok"        # the compiled cache's entries: "these bytes load"


def check(path: str | None = None, read: Reader = read_plain) -> None:
    """Raise what ``model.load(path, read)`` would raise, else nothing."""
    raw = read(str(path or DEFAULT_MODEL))
    precompiled.load_or_build(KIND, _source(path, raw), lambda: _loads(path, raw) is not None)


def load(path: str | None = None, read: Reader = read_plain) -> LinearModel:
    """``model.load(path, read)``, remembering that these bytes load (a start, or `aifw policy
    check --prepare` as `make install` runs it, leaves the answer for later checks)."""
    raw = read(str(path or DEFAULT_MODEL))
    loaded = _loads(path, raw)
    precompiled.remember(KIND, _source(path, raw), True)
    return loaded


def _source(path: str | None, raw: bytes) -> bytes:
    # the path is in load's messages; the bytes are what loads or not
    return str(path).encode() + b"\0" + raw


def _loads(path: str | None, raw: bytes) -> LinearModel:
    from . import model
    return model.load(path, lambda _name: raw)
