"""CPU cost of the request-reading checks (canonical path, strict JSON, body parsing) per request.

    .venv/bin/python bench/request_checks.py

Prints microseconds per call (best of 5 repeats) for a 1 KB and a 100 KB chat body: orjson.loads
alone (what the proxy did before), strictjson.loads (plus re-serialisation and ':' counts), the
slot parser, and canonical_target on a plain and a dotted path. Single-threaded CPU time; the
machine is shared, so read the ratios, not the absolute numbers.
"""
from __future__ import annotations

import timeit

import orjson

from proxy.canonical import canonical_target
from proxy.parsing import strictjson
from proxy.parsing.request import check_fields, parse_request


def body(size: int) -> bytes:
    turn = "Please summarise the quarterly report: revenue grew 12% while costs fell. " * 4
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    while len(orjson.dumps(messages)) < size:
        messages.append({"role": "user", "content": [{"type": "text", "text": turn}]})
        messages.append({"role": "assistant", "content": turn})
    return orjson.dumps({"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2, "stream": False})


def best(stmt, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6


def main() -> None:
    for label, raw in (("1 KB", body(1024)), ("100 KB", body(100 * 1024))):
        n = 20000 if len(raw) < 10000 else 300
        parsed = orjson.loads(raw)
        base = best(lambda: orjson.loads(raw), n)
        strict = best(lambda: strictjson.loads(raw), n)
        parse = best(lambda: (check_fields(parsed), parse_request("chat", parsed)), n)
        print(f"{label} body ({len(raw)} B): orjson.loads {base:.1f} us, strictjson.loads {strict:.1f} us "
              f"(+{strict - base:.1f} us), check_fields+parse_request {parse:.1f} us")
    for path in ("/v1/chat/completions", "/v1/files/./a/../b?purpose=x", "/v1/models/ft%3Agpt-4o"):
        print(f"canonical_target({path!r}): {best(lambda: canonical_target(path), 50000):.2f} us")


if __name__ == "__main__":
    main()
