"""Request ids (``req_`` and 32 hex digits: 128 random bits, the audit record's ``id``), drawn
from the operating system in batches.

``uuid.uuid4()`` per request cost a getrandom syscall and a UUID object each time; one
``os.urandom`` call now serves 256 ids. A forked worker (``aifw serve --workers N``) drops the
batch it inherited, so no two processes hand out the same ids.
"""
from __future__ import annotations

import os

PREFIX = "req_"
_BATCH = 256
_ready: list[str] = []


def new_request_id() -> str:
    try:
        return _ready.pop()      # atomic under the GIL: safe from any thread
    except IndexError:
        pass
    digits = os.urandom(16 * _BATCH).hex()
    _ready.extend([PREFIX + digits[i:i + 32] for i in range(0, len(digits), 32)])
    return _ready.pop()


os.register_at_fork(after_in_child=_ready.clear)
