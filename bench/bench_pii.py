"""PII masking cost: scanning µs per KB of prose with and without PII, 1 KB and 100 KB prompts,
and a streamed answer with hold-back on vs off.

    .venv/bin/python bench/bench_pii.py            # everything
    .venv/bin/python bench/bench_pii.py scan       # only the µs-per-KB table
    .venv/bin/python bench/bench_pii.py phones     # phone precision/recall on generated sets
    .venv/bin/python bench/bench_pii.py exchange   # the guard's CPU per 1 KB chat exchange

Times are CPU time of this process (``time.process_time``), so a busy machine slows them less
than wall time would; nothing here is asserted by tests.
"""
from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy.exchange import Exchange  # noqa: E402
from proxy.guards.base import CompileContext, StreamText  # noqa: E402
from proxy.guards.pii import SPEC  # noqa: E402
from proxy.pii.recognizers.phone import forget_phone_numbers  # noqa: E402
from proxy.scancache import CACHE as SCAN_CACHE  # noqa: E402
from proxy.services import Services  # noqa: E402
from proxy.textslots import TextSlot  # noqa: E402

WORDS = ("the quick brown fox jumps over a lazy dog while the team reviews quarterly numbers "
         "and drafts a reply to the customer about order 4471 shipped on 2024-03-02").split()
PII = ["jane.roe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32",
       "123-45-6780", "10.20.30.40", "AKIAIOSFODNN7EXAMPLE", "call 415-555-0132"]


def make_text(size: int, pii_every: int = 40, seed: int = 7) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < size:
        piece = rng.choice(PII) if rng.randrange(pii_every) == 0 else rng.choice(WORDS)
        out.append(piece)
        n += len(piece) + 1
    return " ".join(out)[:size]


# Prose for the per-KB table: sentences drawn by seed, so no two texts are the same (nothing a
# cache could remember between runs).
PROSE = (
    "The quarterly review went well and the team agreed on the roadmap for the next release.",
    "Please send your comments on the draft by Friday, and tell me if anything is unclear.",
    "I moved house last month and my contents insurance still lists the old address.",
    "The new flat has a shared entrance, a bike store in the basement and a small balcony.",
    "Could you summarise the attached report in three bullet points for the board?",
    "We would like to know whether the warranty covers accidental damage to the screen.",
    "Our customers mostly ask about delivery times, returns and how to change an order.",
    "The migration should finish before the summer so that support can retire the old system.",
    "Write a friendly reply that apologises for the delay and explains the next steps.",
    "She asked whether the premium changes if her partner is added to the policy.",
)
NUMBERS = (
    "Order 4471 shipped on 2024-03-02 and should arrive within 3 to 5 working days.",
    "The invoice total was $1,249.50, paid on 12/03/2024 by bank transfer.",
    "Version 2.14.1 fixed 37 bugs; the build took 14:32 minutes on 8 cores.",
    "Sales grew 12.5% to 4.2 million units in Q3 2024, up from 3.7 million.",
)
EMAILS = ("jane.roe@example.com", "j.smith@mail.example.co.uk", "kontakt@beispiel.de", "a.martin@exemple.fr")
# Phone formats; each "#" is a random digit, so every text has its own number (the
# recogniser remembers numbers it has parsed, and repeats would measure that memory).
PHONES = ("+44 20 7946 ####", "(415) 555-2###", "030 9018##", "+33 1 42 68 ## ##", "0458 922 ###",
          "+1 650-253-####", "020 7946 ####", "+49 (0)30 9018##")


def prose(size: int, seed: int, numbers: bool = False, pii: bool = False) -> str:
    rng = random.Random(seed)
    pool = PROSE + NUMBERS if numbers else PROSE
    out: list[str] = []
    n = 0
    if pii:      # one e-mail address and one phone number per KB, as in a support request
        for _ in range(max(1, size // 1024)):
            phone = "".join(str(rng.randrange(10)) if c == "#" else c for c in rng.choice(PHONES))
            out.append(f"You can reach me at {rng.choice(EMAILS)} or on {phone}.")
            n += len(out[-1]) + 1
    while n < size:
        out.append(rng.choice(pool))
        n += len(out[-1]) + 1
    rng.shuffle(out)
    return " ".join(out)[:size]


def exchange(text: str) -> Exchange:
    body = {"messages": [{"role": "user", "content": text}]}
    ex = Exchange("b", "POST", "/v1/chat/completions", "", {}, None, None, body=body)
    ex.request_slots = [TextSlot("user", "message", text, body["messages"][0], "content")]
    return ex


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_request(guard) -> None:
    print("## request masking (best of N, whole prompt, wall time, cold: nothing cached)")
    print("| size | PII values | time | per KB |")
    print("|---:|---:|---:|---:|")
    for size, repeat in ((1024, 200), (100 * 1024, 5)):
        text = make_text(size)
        count = {}

        def run():
            forget_phone_numbers()
            SCAN_CACHE.clear()
            ex = exchange(text)
            asyncio.run(guard.on_request(ex))
            count["n"] = sum(sum(f.counts.values()) for f in ex.findings)
        t = best_of(run, repeat)
        print(f"| {size // 1024} KB | {count['n']} | {t * 1e3:.2f} ms | {t * 1e3 / (size / 1024):.3f} ms |")


def cpu_per_call(fn, texts: list, rounds: int = 5, prepare=None) -> float:
    """Best round's mean CPU seconds per call of ``fn`` over ``texts`` (each first passed
    through ``prepare``, untimed)."""
    best = float("inf")
    for _ in range(rounds):
        forget_phone_numbers()      # every round starts cold: no number parsed, no text seen
        SCAN_CACHE.clear()
        args = [prepare(t) for t in texts] if prepare else texts
        t0 = time.process_time()
        for arg in args:
            fn(arg)
        best = min(best, (time.process_time() - t0) / len(args))
    return best


def drive(coro) -> None:
    """Run a coroutine that never awaits anything pending, without an event loop's cost."""
    try:
        coro.send(None)
    except StopIteration:
        return
    raise RuntimeError("the coroutine awaited something")


def bench_scan(guard) -> None:
    detector = guard.config.request_detector
    print("## scanning cost per KB (CPU time; 200 different 1 KB texts each, best of 5 rounds, "
          "each round cold: scan cache and phone parses forgotten)")
    print("| text | detector µs/KB | guard on_request µs/KB (scan + mask) |")
    print("|---|---:|---:|")
    kinds = {
        "prose, no digits": dict(),
        "prose with dates, amounts, order numbers (no PII)": dict(numbers=True),
        "prose + one e-mail and one phone per KB": dict(numbers=True, pii=True),
        "dense PII (make_text: a value every ~40 words)": None,
    }
    for name, kw in kinds.items():
        texts = ([prose(1024, seed, **kw) for seed in range(200)] if kw is not None
                 else [make_text(1024, seed=seed) for seed in range(200)])
        det = cpu_per_call(detector.detect, texts)
        req = cpu_per_call(lambda ex: drive(guard.on_request(ex)), texts, prepare=exchange)
        print(f"| {name} | {det * 1e6:.0f} | {req * 1e6:.0f} |")
    print()


def bench_stream(guards: dict) -> None:
    answer = make_text(20 * 1024, seed=11) + " <EMAIL_ADDRESS_1>"
    chunks = [answer[i:i + 4] for i in range(0, len(answer), 4)]   # ~one token per delta
    print("\n## streamed answer: 20 KB in 4-character deltas")
    print("| mode | guard time per delta (mean) | p99 | held back (mean / max chars) | chars before first output |")
    print("|---|---:|---:|---:|---:|")
    for name, guard in guards.items():
        ex = exchange("I am jane.roe@example.com")
        asyncio.run(guard.on_request(ex)) if guard is not None else None
        s = StreamText()
        per, held, sent, first = [], [], 0, None
        got = 0
        for c in chunks:
            t0 = time.perf_counter()
            out = guard.on_chunk(ex, s, c) if guard is not None else c
            per.append(time.perf_counter() - t0)
            sent += len(c)
            got += len(out)
            # Masked output differs in length from its input: measure the buffer itself.
            held.append(len(ex.state["pii"].streams[s].buf) if guard is not None else 0)
            if first is None and out:
                first = sent
        per.sort()
        print(f"| {name} | {statistics.mean(per) * 1e6:.1f} µs | {per[int(len(per) * 0.99)] * 1e6:.1f} µs | "
              f"{statistics.mean(held):.1f} / {max(held)} | {first} |")


def bench_phones() -> None:
    """Phone precision and recall on the held-out set of tests/pii/phone_heldout.py and, when
    Faker is installed (it is not a dependency: ``pip install faker``), on numbers Faker makes up
    for 20 locales, judged with the default regions and with the locale's region as the hint."""
    from functools import lru_cache

    from proxy.pii.detector import default_detector
    from proxy.pii.recognizers.phone import DEFAULT_REGIONS
    from tests.pii.phone_heldout import negatives, positives, score

    @lru_cache(maxsize=None)
    def detector(regions):
        return default_detector(phone_regions=regions or DEFAULT_REGIONS)

    s = score(positives() + negatives(), detector)
    print("## phones: held-out set (phonenumbers' example numbers of 44 regions, fixed line and mobile, up to 8 written forms each; 54 negatives)")
    print(f"positives {s.tp + s.fn}, precision {s.precision:.3f}, recall {s.recall:.3f}, "
          f"false alarms {s.fp}, misses {s.fn}\n")
    try:
        from faker import Faker
    except ImportError:
        print("(Faker not installed: no cross-check)")
        return
    locales = {"en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "en_IN": "IN", "en_AU": "AU",
               "en_CA": "CA", "it_IT": "IT", "es_ES": "ES", "nl_NL": "NL", "pt_BR": "BR", "ja_JP": "JP",
               "pl_PL": "PL", "sv_SE": "SE", "de_CH": "CH", "de_AT": "AT", "en_NZ": "NZ", "en_IE": "IE",
               "pt_PT": "PT", "da_DK": "DK"}
    templates = ("Noted in the ticket: {}", "{} was on the form.", "Per the CRM, {} is current.",
                 "Forwarded from {} last week.")
    rng = random.Random(5)
    rows = []
    for locale, region in locales.items():
        fake = Faker(locale)
        fake.seed_instance(3)
        rows += [(rng.choice(templates).format(v), v, region) for v in (fake.phone_number() for _ in range(40))]
    print("## phones: Faker cross-check (40 numbers x 20 locales, no contact word)")
    print("| regions | recall | wrong spans |")
    print("|---|---:|---:|")
    for label, hint in (("default", lambda r: ()), ("locale's region as the hint", lambda r: (r,))):
        hit = wrong = 0
        for text, value, region in rows:
            found = [text[x.start:x.end] for x in detector(hint(region)).detect(text) if x.entity == "PHONE_NUMBER"]
            hit += value in found
            wrong += sum(f != value for f in found)
        print(f"| {label} | {hit / len(rows):.3f} | {wrong} |")


def bench_exchange(guard, redact, rounds: int = 5, n: int = 1000) -> None:
    """What the pii guard costs one exchange of `make bench`'s 1 KB chat (bench/bodies.py): the
    request's four turns masked (three of them seen before: the scan cache answers), the
    answer (the fake provider's echo of the newest turn, with its placeholder) scanned and
    restored, and the audit log's redacted copy of the answer."""
    from bench.bodies import CHAT_1K, UNIQUE

    def make(i: int) -> Exchange:
        messages = [dict(m, content=m["content"].replace(UNIQUE, str(i))) for m in CHAT_1K]
        ex = Exchange("b", "POST", "/v1/chat/completions", "", {}, None, None,
                      body={"model": "m", "messages": messages})
        ex.request_slots = [TextSlot(m["role"], "message", m["content"], m, "content", k)
                            for k, m in enumerate(messages)]
        ex.capture_text = True          # the audit log keeps texts (level redacted)
        return ex

    def answer(ex: Exchange) -> None:
        message = {"role": "assistant", "content": "You said: " + ex.request_slots[-1].text}
        ex.response_body = {"choices": [{"index": 0, "message": message}]}
        ex.response_slots = [TextSlot("assistant", "output", message["content"], message, "content")]

    SCAN_CACHE.clear()
    forget_phone_numbers()
    for i in range(50):             # the repeated turns are in the scan cache, as in a server
        ex = make(i)
        drive(guard.on_request(ex))
    best = [float("inf")] * 3
    for r in range(rounds):
        exchanges = [make(10_000 * (r + 1) + i) for i in range(n)]
        spent = [0.0, 0.0, 0.0]
        for ex in exchanges:
            t0 = time.process_time()
            drive(guard.on_request(ex))
            t1 = time.process_time()
            answer(ex)
            t2 = time.process_time()
            drive(guard.on_response(ex))
            t3 = time.process_time()
            redact(ex, ex.response_slots[0].text)
            t4 = time.process_time()
            spent[0] += t1 - t0
            spent[1] += t3 - t2
            spent[2] += t4 - t3
        best = [min(b, x / n) for b, x in zip(best, spent)]
    print(f"## one 1 KB chat exchange (CPU time, {n} exchanges, best of {rounds} rounds)")
    print("| request masking | answer scan + restore | audit redaction | total |")
    print("|---:|---:|---:|---:|")
    print(" | ".join(f"{x * 1e6:.0f} µs" for x in best + [sum(best)]).join(("| ", " |")))


def main() -> None:
    if sys.argv[1:] == ["phones"]:
        bench_phones()
        return
    services = Services()
    full = SPEC.compile({}, CompileContext(".", services))
    if sys.argv[1:] == ["exchange"]:
        bench_exchange(full, services.get("pii_redactor"))
        return
    restore_only = SPEC.compile({"entities": {}, "defaultOperator": "none"}, CompileContext(".", services))
    restore_only_req = SPEC.compile({"entities": {e: {"request": "replace", "response": "none"} for e in
                                                  ("EMAIL_ADDRESS",)}, "defaultOperator": "none"},
                                    CompileContext(".", services))
    bench_scan(full)
    if sys.argv[1:] == ["scan"]:
        return
    bench_request(full)
    bench_stream({"no pii guard": None, "restore only (no answer scanning)": restore_only_req,
                  "hold-back on (scan + restore, window 32)": full})
    del restore_only


if __name__ == "__main__":
    main()
