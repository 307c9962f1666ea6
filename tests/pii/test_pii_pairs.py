"""Recognisers on each other's output: every pair of entity kinds, both orders, adjacent and
separated, through the masking path (request masking, answer masking next to a placeholder,
and the audit redactor). Regression for "SSN 536-22-8741, phone +1 650-253-0000" reaching the
upstream with the phone number unmasked (the SSN's "ssn" label vetoed the phone number)."""
from itertools import permutations

import pytest

from proxy.pii.vault import PLACEHOLDER

from .helpers import chat_exchange, make_guard, set_answer

# (entity, label written before the value, value)
SAMPLES = (
    ("EMAIL_ADDRESS", "email", "jane.roe@example.com"),
    ("PHONE_NUMBER", "phone", "+1 650-253-0000"),
    ("CREDIT_CARD", "card", "4111 1111 1111 1111"),
    ("IBAN_CODE", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("US_SSN", "SSN", "536-22-8741"),
    ("IP_ADDRESS", "host", "192.168.1.20"),
    ("DATE_OF_BIRTH", "born", "12/03/1985"),
    ("AWS_ACCESS_KEY", "key", "AKIAIOSFODNN7EXAMPLE"),
    ("OPENAI_API_KEY", "token", "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("PASSWORD", "password=", "hunter2!"),
)
JOINS = (" ", ", ", "; ", " and then, after a long pause, ")
PAIRS = [(a, b, j) for a, b in permutations(SAMPLES, 2) for j in JOINS]


def _write(sample, labelled=True):
    _, label, value = sample
    if not labelled:
        return value
    return f"{label}{value}" if label.endswith("=") else f"{label} {value}"


def _ids(p):
    a, b, j = p
    return f"{a[0]}+{b[0]}[{j.strip() or 'space'}]"


@pytest.mark.parametrize("a,b,join", PAIRS, ids=[_ids(p) for p in PAIRS])
async def test_every_pair_is_masked_on_the_way_in(a, b, join):
    guard, _ = make_guard()
    text = _write(a) + join + _write(b)
    ex = chat_exchange(("user", text))
    await guard.on_request(ex)
    sent = ex.body["messages"][0]["content"]
    assert a[2] not in sent and b[2] not in sent, sent
    kinds = sorted(m.group(1) for m in PLACEHOLDER.finditer(sent))
    assert kinds == sorted((a[0], b[0])), sent


@pytest.mark.parametrize("a,b,join", PAIRS, ids=[_ids(p) for p in PAIRS])
async def test_value_next_to_a_placeholder_is_masked_in_answers_and_audit(a, b, join):
    guard, services = make_guard()
    ex = chat_exchange(("user", _write(a)))
    await guard.on_request(ex)
    masked_a = ex.body["messages"][0]["content"]
    # The model answers with the caller's placeholder and a value it made up itself.
    answer = masked_a + join + _write(b)
    set_answer(ex, answer)
    await guard.on_response(ex)
    shown = ex.response_body["choices"][0]["message"]["content"]
    assert b[2] not in shown, shown
    audit = services.get("pii_redactor")(ex, answer)
    assert b[2] not in audit and a[2] not in audit, audit


@pytest.mark.parametrize("first,second", [
    ("SSN 536-22-8741, phone +1 650-253-0000", "+1 650-253-0000"),
    ("phone +1 650-253-0000, SSN 536-22-8741", "+1 650-253-0000"),
    ("SSN 536-22-8741 +1 650-253-0000", "+1 650-253-0000"),
    ("536-22-8741 020 7946 0958", "020 7946 0958"),
    ("020 7946 0958 536-22-8741", "020 7946 0958"),
    ("card 4111 1111 1111 1111 +44 20 7946 0958", "+44 20 7946 0958"),
])
async def test_issue_12_phone_after_another_entity(first, second):
    guard, _ = make_guard()
    ex = chat_exchange(("user", first))
    await guard.on_request(ex)
    sent = ex.body["messages"][0]["content"]
    assert second not in sent and "<PHONE_NUMBER_1>" in sent, sent
