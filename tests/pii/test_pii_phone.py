"""Phone numbers without a contact word: the tuning cases (issue 13 item 6), and the held-out
set of phone_heldout.py, which is only measured."""
from functools import lru_cache

import pytest

from proxy.pii.config import compile_config
from proxy.pii.detector import default_detector
from proxy.pii.recognizers.phone import DEFAULT_REGIONS

from .phone_heldout import negatives, positives, score


@lru_cache(maxsize=None)
def detector(regions: tuple[str, ...]):
    return default_detector(phone_regions=regions or DEFAULT_REGIONS)


def phones(text, regions=()):
    return [text[s.start:s.end] for s in detector(regions).detect(text) if s.entity == "PHONE_NUMBER"]


@pytest.mark.parametrize("text,phone", [
    ("Noted in the ticket: 0458922359", "0458922359"),             # bare, national trunk prefix
    ("Noted in the ticket: 030 901820.", "030 901820"),
    ("Reach Berlin at +49(0)30 901820 today", "+49(0)30 901820"),
    ("Her number +49 (0) 30 9018 2011.", "+49 (0) 30 9018 2011"),
    ("Front desk: 415-555-0132x1234", "415-555-0132x1234"),
    ("Use 415.555.0132 ext. 99 for billing", "415.555.0132 ext. 99"),
    ("Use (415)555-0132x123 for billing", "(415)555-0132x123"),
    ("It was 001-415-555-0132x123 on the form", "001-415-555-0132x123"),
    ("It was 001-335-504-9258 on the form", "001-335-504-9258"),  # unassigned area, NANP shape
    ("It was 0044 20 7946 0958 on the form", "0044 20 7946 0958"),
    ("It was 8 (301) 123-45-67 in Moscow", "8 (301) 123-45-67"),
    ("Lisbon office: nothing; number (351) 912 345 678", "(351) 912 345 678"),
])
def test_written_as_a_phone_without_a_contact_word(text, phone):
    assert phones(text, ("US", "GB", "DE", "FR", "IN", "RU")) == [phone]


def test_region_hint_admits_national_formats():
    text = "Noted in the ticket: 612 34 56 78"      # Spanish grouping
    assert phones(text) == []
    assert phones(text, ("ES",)) == ["612 34 56 78"]
    cfg = compile_config({"phoneRegions": ["ES"]}, ".")
    assert [text[s.start:s.end] for s in cfg.request_detector.detect(text)] == ["612 34 56 78"]


@pytest.mark.parametrize("text", [
    "Order number 4155550132 has shipped",
    "order no. is 0207946095",
    "account 0458922359 is overdrawn",
    "Ticket id: 2125550123",
    "It happened on 2024-03-02 and 02.03.2024 and 20240302",
    "Open 0830-1700 every day; founded 1998-2024",
    "That costs $ 1 234 567 or EUR 0 412 345",
    "Upgrade to version 4.10.2.1234 or 10.0.19041.1234",
    "Fragments 4111 1111 1111 and 3704 0044 0532 0130 00",
    "Mail it to NY 10001-2345 or MA 02134-1234",
    "At 12:30:45 the batch 2023-554411 ran",
    "Seats 1 2 3 4 5 6 7 8 remain",
])
def test_not_phones(text):
    assert phones(text) == []


def test_a_non_phone_word_vetoes_only_the_number_it_labels():
    assert phones("Order 4411 shipped; call 0207 946 0958") == ["0207 946 0958"]
    assert phones("Account manager Bob, 0207 946 0958") == ["0207 946 0958"]
    assert phones("account number is 0207 946 0958") == []


def test_held_out_phone_set():
    """Generated from phonenumbers' example numbers; see phone_heldout.py (never tuned on)."""
    result = score(positives() + negatives(), detector)
    assert result.precision >= 0.95 and result.recall >= 0.95, (result.misses, result.false_alarms)


def test_held_out_negatives_are_never_phones():
    result = score(negatives(), detector)
    assert result.false_alarms == []


@pytest.mark.parametrize("text,phone", [
    ("+1 415-555-0132 12", "+1 415-555-0132"),
    ("Noted: +44 20 7946 0958 3 times", "+44 20 7946 0958"),
    ("Write +33 1 42 68 53 00 2024 down", "+33 1 42 68 53 00"),
    ("It was 001-415-555-0132 42 on the form", "001-415-555-0132"),
    ("Noted in the ticket: 020 7946 0958 12", "020 7946 0958"),
])
def test_a_phone_number_followed_by_another_number(text, phone):
    """The greedy candidate takes the next number too and fails as a whole; the longest valid
    prefix that ends at a digit group is the phone number (issue 13 item 6)."""
    assert phones(text) == [phone]


@pytest.mark.parametrize("text", [
    "Readings 120 80 72 98 6 37 2",              # no phone number ends in a lone digit
    "On 12/03/2024 15 units left",               # a date followed by a number
    "On 2024-03-02 12 boxes shipped",
    "Order 4471 2210 998 12 shipped",
    "Invoice 2024 0001 1234 12 is due",
    "Serial 8841 2210 9981 12 is on the box",
    "Account 020 7946 0958 12 is closed",        # labelled as another kind of number
    "It cost $ 1 234 567 89 in total",
    "Paid EUR 4 200 000 12 times",
    "Totals: 1 249 500 12 600 3 400",
    "Seats 1 2 3 4 5 6 7 8 9 10 remain",
    "Version 10.0.19041 1234 ships",
])
def test_numbers_followed_by_numbers_stay_non_phones(text):
    assert phones(text) == []


async def test_whole_answer_masks_a_phone_number_followed_by_a_number():
    from .helpers import chat_exchange, make_guard, set_answer
    guard, _ = make_guard()
    ex = chat_exchange(("user", "hi"))
    await guard.on_request(ex)
    message = set_answer(ex, "Dial +1 415-555-0132 12 times.")
    assert await guard.on_response(ex) is None
    assert message["content"] == "Dial <PHONE_NUMBER_1> 12 times."
