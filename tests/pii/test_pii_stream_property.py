"""Property: however an answer is cut into SSE deltas, nothing the policy masks leaks and every
placeholder of the caller's own data is restored, exactly as in a non-streamed answer."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.guards.base import StreamText

from .helpers import chat_exchange, make_guard, set_answer

# The caller's values, sent in the request and echoed back by the model as placeholders.
CALLER = ["jane.roe@example.com", "+44 20 7946 0958", "GB82 WEST 1234 5698 7654 32"]
# Values the model produces itself: these must never reach the client.
MODEL = ["bob@corp.io", "4111 1111 1111 1111", "123-45-6780", "10.20.30.40", "2001:db8::1",
         "AKIAIOSFODNN7EXAMPLE", "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789",
         "+1 415-555-0132", "DE89 3704 0044 0532 0130 00"]
WORDS = ["ok", "the", "value", "is", "and", "call", "then,", "(see", "note)", "\n", "mail:"]

GUARD, _ = make_guard({"streamHoldBack": 32})


def _request_exchange():
    ex = chat_exchange(("user", "I am " + ", ".join(CALLER)))
    return ex


piece = st.one_of(st.sampled_from(WORDS), st.sampled_from(MODEL),
                  st.sampled_from(["<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>", "<IBAN_CODE_1>"]))
answers = st.lists(piece, min_size=1, max_size=6).map(" ".join)


def _stream(ex, chunks, channel="content"):
    s = StreamText(0, channel)
    out = [GUARD.on_chunk(ex, s, c) for c in chunks]
    assert all(isinstance(o, str) for o in out)
    return "".join(out) + GUARD.on_end(ex, s)


async def _expected(answer):
    ex = _request_exchange()
    await GUARD.on_request(ex)
    set_answer(ex, answer)
    await GUARD.on_response(ex)
    return ex.response_slots[0].text


def _check(answer, streamed, expected):
    assert streamed == expected
    for value in MODEL:
        assert value not in streamed
    for i, value in enumerate(CALLER):
        placeholder = ["<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>", "<IBAN_CODE_1>"][i]
        assert placeholder not in streamed
        if placeholder in answer:
            assert value in streamed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers)
async def test_every_two_chunk_split(answer):
    expected = await _expected(answer)
    for cut in range(1, len(answer)):
        ex = _request_exchange()
        await GUARD.on_request(ex)
        _check(answer, _stream(ex, [answer[:cut], answer[cut:]]), expected)


@settings(max_examples=40, deadline=None)
@given(answers, st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=60))
async def test_random_multi_chunk_split(answer, sizes):
    expected = await _expected(answer)
    chunks, pos, i = [], 0, 0
    while pos < len(answer):
        n = sizes[i % len(sizes)]
        chunks.append(answer[pos:pos + n])
        pos, i = pos + n, i + 1
    ex = _request_exchange()
    await GUARD.on_request(ex)
    _check(answer, _stream(ex, chunks), expected)


async def test_char_by_char_and_hold_back_is_bounded():
    answer = "word " * 200 + "mail <EMAIL_ADDRESS_1> now"
    ex = _request_exchange()
    await GUARD.on_request(ex)
    s = StreamText()
    pending_max = 0
    sent = 0
    for i, c in enumerate(answer):
        sent += len(GUARD.on_chunk(ex, s, c))
        pending_max = max(pending_max, i + 1 - sent)
    out_tail = GUARD.on_end(ex, s)
    assert pending_max <= 32 + 24        # the window plus the run that crosses it
    assert out_tail.endswith("jane.roe@example.com now")


async def test_unterminated_private_key_is_swallowed_past_max_hold():
    guard, _ = make_guard({"maxHold": 256})
    ex = _request_exchange()
    await guard.on_request(ex)
    s = StreamText()
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" * 40
    chunks = ["Here: -----BEGIN PRIVATE KEY-----\n"] + [body[i:i + 40] for i in range(0, len(body), 40)]
    chunks += ["-----END PRIVATE KEY-----\n", "Done."]
    out = "".join(guard.on_chunk(ex, s, c) for c in chunks) + guard.on_end(ex, s)
    assert "MIIE" not in out and out.startswith("Here: <PRIVATE_KEY_1>") and out.endswith("Done.")
