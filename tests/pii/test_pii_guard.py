import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.guards.base import StreamText
from proxy.pii.operators import decrypt_text
from proxy.pii.vault import Vault

from .helpers import chat_exchange, make_guard, set_answer

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"


async def test_request_masked_with_typed_placeholders_and_counts_only():
    guard, _ = make_guard()
    ex = chat_exchange(("system", "Be brief."), ("user", f"Mail {EMAIL}, again {EMAIL}; card {CARD}"))
    assert await guard.on_request(ex) is None
    assert ex.body["messages"][1]["content"] == "Mail <EMAIL_ADDRESS_1>, again <EMAIL_ADDRESS_1>; card <CREDIT_CARD_1>"
    assert ex.body_changed
    (finding,) = ex.findings
    assert finding.counts == {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1}
    assert EMAIL not in repr(ex.findings)


async def test_block_returns_verdict_with_rule_ids_and_still_masks():
    guard, _ = make_guard({"entities": {"US_SSN": "block"}})
    ex = chat_exchange(("user", f"my ssn is 123-45-6780 and mail {EMAIL}"))
    verdict = await guard.on_request(ex)
    assert verdict.status == 400 and verdict.code == "content_filter"
    assert verdict.rule_ids == ("pii.US_SSN",)
    assert "123-45-6780" not in verdict.message
    assert "<EMAIL_ADDRESS_1>" in ex.body["messages"][0]["content"]


async def test_restore_in_answer_and_tool_arguments_json_escaped():
    guard, _ = make_guard()
    secret = "ab\\cd12"          # a backslash must be escaped inside JSON arguments
    ex = chat_exchange(("user", f"log in with password={secret} as {EMAIL}"))
    await guard.on_request(ex)
    assert ex.body["messages"][0]["content"] == "log in with password=<PASSWORD_1> as <EMAIL_ADDRESS_1>"
    message = set_answer(ex, "Sent to <EMAIL_ADDRESS_1>.", '{"pw": "<PASSWORD_1>"}')
    assert await guard.on_response(ex) is None
    assert message["content"] == f"Sent to {EMAIL}."
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"pw": secret}


async def test_same_numbering_across_turns_without_server_state():
    guard, _ = make_guard()
    turn1 = chat_exchange(("user", f"I am {EMAIL}, card {CARD}"))
    await guard.on_request(turn1)
    turn2 = chat_exchange(("user", f"I am {EMAIL}, card {CARD}"),
                          ("assistant", f"Hi {EMAIL}!"), ("user", f"also bob@x.org and {EMAIL}"))
    await guard.on_request(turn2)
    assert turn2.body["messages"][0]["content"] == turn1.body["messages"][0]["content"]
    assert turn2.body["messages"][2]["content"] == "also <EMAIL_ADDRESS_2> and <EMAIL_ADDRESS_1>"


async def test_placeholders_already_in_history_are_never_reused():
    guard, _ = make_guard()
    ex = chat_exchange(("assistant", "masked earlier: <EMAIL_ADDRESS_1>"), ("user", f"mine is {EMAIL}"))
    await guard.on_request(ex)
    assert ex.body["messages"][1]["content"] == "mine is <EMAIL_ADDRESS_2>"
    set_answer(ex, "<EMAIL_ADDRESS_1> vs <EMAIL_ADDRESS_2>")
    await guard.on_response(ex)
    assert ex.response_slots[0].text == f"<EMAIL_ADDRESS_1> vs {EMAIL}"


async def test_vault_is_per_exchange():
    guard, _ = make_guard()
    alice = chat_exchange(("user", f"I am {EMAIL}"))
    await guard.on_request(alice)
    mallory = chat_exchange(("user", "repeat <EMAIL_ADDRESS_1> please"))
    await guard.on_request(mallory)
    set_answer(mallory, "It is <EMAIL_ADDRESS_1>")
    await guard.on_response(mallory)
    assert EMAIL not in mallory.response_slots[0].text


async def test_model_produced_pii_masked_and_block_in_answers():
    guard, _ = make_guard({"entities": {"US_SSN": {"request": "replace", "response": "block"},
                                        "EMAIL_ADDRESS": {"request": "replace", "response": "mask"}}})
    ex = chat_exchange(("user", "hello"))
    await guard.on_request(ex)
    set_answer(ex, "Contact bob@corp.io or 10.0.0.1")
    assert await guard.on_response(ex) is None
    assert ex.response_slots[0].text == "Contact *******p.io or <IP_ADDRESS_1>"
    ex2 = chat_exchange(("user", "hello"))
    await guard.on_request(ex2)
    set_answer(ex2, "Your SSN is 123-45-6780")
    verdict = await guard.on_response(ex2)
    assert verdict.rule_ids == ("pii.US_SSN",)


async def test_hash_is_stable_keyed_hmac(monkeypatch):
    monkeypatch.setenv("AIFW_PII_HASH_KEY", "k1")
    guard, _ = make_guard({"entities": {"EMAIL_ADDRESS": "hash"}})
    outs = []
    for _ in range(2):
        ex = chat_exchange(("user", f"x {EMAIL}"))
        await guard.on_request(ex)
        outs.append(ex.body["messages"][0]["content"])
    assert outs[0] == outs[1] and EMAIL not in outs[0]
    monkeypatch.setenv("AIFW_PII_HASH_KEY", "k2")
    guard2, _ = make_guard({"entities": {"EMAIL_ADDRESS": "hash"}})
    ex = chat_exchange(("user", f"x {EMAIL}"))
    await guard2.on_request(ex)
    assert ex.body["messages"][0]["content"] != outs[0]


async def test_encrypt_roundtrip_and_missing_key(monkeypatch):
    monkeypatch.delenv("AIFW_PII_ENCRYPTION_KEY", raising=False)
    with pytest.raises(ValueError, match="AIFW_PII_ENCRYPTION_KEY"):
        make_guard({"entities": {"EMAIL_ADDRESS": "encrypt"}})
    monkeypatch.setenv("AIFW_PII_ENCRYPTION_KEY", "0123456789abcdef")
    guard, _ = make_guard({"entities": {"EMAIL_ADDRESS": "encrypt"}})
    ex = chat_exchange(("user", f"x {EMAIL}"))
    await guard.on_request(ex)
    text = ex.body["messages"][0]["content"]
    assert text.startswith("x <ENC:EMAIL_ADDRESS:")
    assert decrypt_text(text, b"0123456789abcdef") == (f"x {EMAIL}", 1)


async def test_redact_mask_and_allow_list():
    guard, _ = make_guard({"entities": {"EMAIL_ADDRESS": "redact", "CREDIT_CARD": "mask"},
                           "allowList": {"values": ["Support@Corp.io"]}})
    ex = chat_exchange(("user", f"a {EMAIL} b {CARD} c support@corp.io"))
    await guard.on_request(ex)
    assert ex.body["messages"][0]["content"] == "a  b ***************1111 c support@corp.io"


async def test_custom_pattern_and_term_list(tmp_path):
    (tmp_path / "codes.txt").write_text("# code names\nBluebird\nRed Falcon\n")
    guard, _ = make_guard({
        "custom": [{"name": "EMPLOYEE_ID", "pattern": r"\bE\d{6}\b", "context": ["employee"]}],
        "termLists": [{"name": "PROJECT", "file": "codes.txt"}],
    }, policy_dir=str(tmp_path))
    ex = chat_exchange(("user", "employee E123456 runs red falcon; the catalogue lists part E654321"))
    await guard.on_request(ex)
    assert ex.body["messages"][0]["content"] == "employee <EMPLOYEE_ID_1> runs <PROJECT_1>; the catalogue lists part E654321"


def test_unknown_entity_is_a_compile_error():
    with pytest.raises(ValueError, match="NOPE"):
        make_guard({"entities": {"NOPE": "replace"}})


async def test_redactor_service_masks_with_the_exchange_vault():
    guard, services = make_guard()
    ex = chat_exchange(("user", f"I am {EMAIL}"))
    await guard.on_request(ex)
    redact = services.get("pii_redactor")
    assert redact(ex, f"answer for {EMAIL} and bob@corp.io") == "answer for <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>"


async def test_streamed_restore_split_placeholder_and_block():
    guard, _ = make_guard({"entities": {"US_SSN": {"request": "replace", "response": "block"}}})
    ex = chat_exchange(("user", f"I am {EMAIL}"))
    await guard.on_request(ex)
    s = StreamText()
    out = "".join(guard.on_chunk(ex, s, c) for c in ["Hello <EMAIL_", "ADDRESS_1", ">, bye"])
    out += guard.on_end(ex, s)
    assert out == f"Hello {EMAIL}, bye"
    s2 = StreamText(0, "content2")
    results = [guard.on_chunk(ex, s2, c) for c in ["Your SSN is 123-", "45-6780 ok"]]
    # the prose before the number goes out at once, nothing of the number does
    assert results[0] == "Your SSN is " and results[1].rule_ids == ("pii.US_SSN",)
    await guard.on_complete(ex)
    assert any(f.action == "restored" and f.counts == {"EMAIL_ADDRESS": 1} for f in ex.findings)


def test_vault_restores_only_request_values():
    v = Vault()
    v.placeholder("EMAIL_ADDRESS", "a@b.co", restorable=True)
    v.placeholder("EMAIL_ADDRESS", "c@d.co", restorable=False)
    assert v.restore("<EMAIL_ADDRESS_1> <EMAIL_ADDRESS_2>")[0] == "a@b.co <EMAIL_ADDRESS_2>"


async def test_monitored_block_in_a_stream_lets_the_text_through_once():
    guard, _ = make_guard({"entities": {"US_SSN": {"request": "replace", "response": "block"}}})
    guard.mode = "monitor"
    ex = chat_exchange(("user", "hi"))
    await guard.on_request(ex)
    s = StreamText()
    chunks = ["Your SSN is 536-", "22-8741 and ", "again 536-22-8741 ok"]
    out = "".join(guard.on_chunk(ex, s, c) for c in chunks) + guard.on_end(ex, s)
    assert out == "".join(chunks)                     # nothing lost, nothing repeated
    assert ex.decision == "monitored"
    assert [f.action for f in ex.findings if f.direction == "response"] == ["would_block"]


async def test_audit_view_of_an_answer_comes_from_the_answers_own_scan(monkeypatch):
    guard, services = make_guard()
    ex = chat_exchange(("user", f"I am {EMAIL}"))
    ex.capture_text = True                     # the audit log keeps texts
    await guard.on_request(ex)
    message = set_answer(ex, "Hi <EMAIL_ADDRESS_1>, write to bob@corp.io or dial +1 415-555-0132 12 times")
    assert await guard.on_response(ex) is None
    assert message["content"] == f"Hi {EMAIL}, write to <EMAIL_ADDRESS_2> or dial <PHONE_NUMBER_1> 12 times"
    scans = []
    monkeypatch.setattr(type(guard._redactor), "detect", lambda self, text, digest=None: scans.append(text) or [])
    redact = services.get("pii_redactor")
    # the restored value is not looked for again: it stays the placeholder the model wrote
    assert redact(ex, message["content"]) == "Hi <EMAIL_ADDRESS_1>, write to <EMAIL_ADDRESS_2> or dial <PHONE_NUMBER_1> 12 times"
    assert scans == []
    assert redact(ex, "another text") == "another text" and scans == ["another text"]


answer_pieces = st.lists(st.sampled_from([
    "<EMAIL_ADDRESS_1>", "<PHONE_NUMBER_1>", EMAIL, "bob@corp.io", CARD, "+1 415-555-0132", "12", "call",
    "SSN 536-22-8741", "password=hunter22", "<EMAIL_ADDRESS_9>", "hello", ",", "\n"]), max_size=8).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(answer_pieces, st.sampled_from([
    {},
    {"entities": {"CREDIT_CARD": "mask", "US_SSN": {"request": "redact", "response": "block"},
                  "PASSWORD": {"request": "replace", "response": "mask"}}},
    {"entities": {"EMAIL_ADDRESS": {"request": "replace", "response": "none"}}},   # scanned apart
]))
async def test_audit_view_equals_redacting_what_the_model_wrote(answer, section):
    """The view is exactly the redactor's scan of the answer as the model wrote it."""
    guard, services = make_guard(section)
    outs = []
    for capture in (True, False):
        ex = chat_exchange(("user", f"I am {EMAIL}, +44 20 7946 0958"))
        ex.capture_text = capture
        await guard.on_request(ex)
        message = set_answer(ex, answer)
        verdict = await guard.on_response(ex)
        outs.append(services.get("pii_redactor")(ex, message["content"] if capture else answer))
        if verdict is not None:
            return                              # blocked: nothing is remembered, the text is scanned
    assert outs[0] == outs[1]
