import pytest

from proxy.pii.detector import default_detector
from proxy.pii.recognizers.custom import TermListRecognizer, load_validator

DET = default_detector()


def found(text):
    return [(s.entity, text[s.start:s.end]) for s in DET.detect(text)]


@pytest.mark.parametrize("card", [
    "4111111111111111", "4222222222222", "4111 1111 1111 1111", "4111-1111-1111-1111",
    "4131034282458809939",          # Visa 19
    "5555555555554444", "2223003122003222",   # Mastercard 51-55 and 2-series
    "378282246310005", "3782 822463 10005",   # Amex
    "6011111111111117", "3530111333300000",   # Discover, JCB
    "30569309025904", "6304000000000000",     # Diners, Maestro
    "630427373398",                           # Maestro 12 digits
    "6200000000000005",                       # UnionPay
])
def test_cards_of_every_scheme(card):
    assert found(f"my card is {card} thanks") == [("CREDIT_CARD", card)]


@pytest.mark.parametrize("text", [
    "order 4111111111111112 shipped",        # Luhn fails
    "ref 1234567812345670",                  # Luhn ok, no scheme starts with 1234
    "41 1111 1111 1111 11",                  # not a printed card grouping
])
def test_not_cards(text):
    assert "CREDIT_CARD" not in [e for e, _ in found(text)]


@pytest.mark.parametrize("iban", ["GB82WEST12345698765432", "DE89 3704 0044 0532 0130 00",
                                  "FR1420041010050500013M02606", "gb82west12345698765432"])
def test_iban_checked(iban):
    assert found(f"pay to {iban} is fine") == [("IBAN_CODE", iban)]


def test_iban_bad_checksum_or_length():
    assert found("pay to GB82WEST12345698765433 now") == []
    assert found("pay to DE893704004405320130000 now") == []


def test_ssn_rules():
    assert found("SSN 123-45-6780") == [("US_SSN", "123-45-6780")]
    for bad in ("000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"):
        assert "US_SSN" not in [e for e, _ in found(f"SSN {bad}")]
    assert found("social security number 123456780") == [("US_SSN", "123456780")]
    assert found("invoice 123456780") == []


@pytest.mark.parametrize("phone", ["+1 415-555-0132", "(415) 555-0132", "+44 20 7946 0958",
                                   "020 7946 0958", "+49 30 901820", "030 901820",
                                   "+33 1 42 68 53 00", "01 42 68 53 00", "+91 98765 43210",
                                   "098765 43210", "+46 (0)8 928 571 38"])
def test_phone_formats(phone):
    assert found(f"Please call me on {phone} tomorrow") == [("PHONE_NUMBER", phone)]


def test_phone_needs_context_when_ambiguous():
    assert found("We shipped 3747 3911 units") == []
    assert found("The meeting is on 2015-12-22 04:34:22") == []
    assert found("Mobile: 467 3395") == [("PHONE_NUMBER", "467 3395")]
    assert found("driver's license number is 6940579") == []


def test_email_and_ips():
    assert found("write to a.b-c+tag@mail.example.co.uk.") == [("EMAIL_ADDRESS", "a.b-c+tag@mail.example.co.uk")]
    assert found("host 192.168.1.20 and 2001:db8::8a2e:370:7334 up") == [
        ("IP_ADDRESS", "192.168.1.20"), ("IP_ADDRESS", "2001:db8::8a2e:370:7334")]
    assert found("at 12:30:45 the score was 999.1.1.1") == []


def test_date_of_birth_only_in_context():
    assert found("Date of birth: 12/03/1985") == [("DATE_OF_BIRTH", "12/03/1985")]
    assert found("She was born on March 4, 1990.") == [("DATE_OF_BIRTH", "March 4, 1990")]
    assert found("The release is on 12/03/1985") == []
    assert found("born 31/02/1985") == []


JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc==\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize("entity,secret", [
    ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("OPENAI_API_KEY", "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("ANTHROPIC_API_KEY", "sk-ant-api03-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("GITHUB_TOKEN", "ghp_" + "a1B2" * 9),
    ("SLACK_TOKEN", "xoxb-1234567890-abcdefghij"),
    ("STRIPE_KEY", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("GOOGLE_API_KEY", "AIza" + "SyA1234567890abcdefghijklmnopqrstuv"),
    ("JWT", JWT),
    ("PRIVATE_KEY", PEM),
])
def test_secrets(entity, secret):
    assert found(f"here: {secret} done") == [(entity, secret)]


def test_passwords_and_url_credentials():
    assert found("db password=hunter2!") == [("PASSWORD", "hunter2!")]
    assert found('config {"api_key": "abc123xyz"}') == [("PASSWORD", "abc123xyz")]
    assert found("postgres://admin:s3cr3t@db.internal:5432/app") == [("PASSWORD", "s3cr3t")]
    assert found("The password: required field") == []


def test_unterminated_private_key_is_masked_to_the_end():
    text = "key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert found(text) == [("PRIVATE_KEY", text[5:])]


def test_term_list_whole_words_case_insensitive():
    rec = TermListRecognizer.build("PROJECT", ["Bluebird", "Blue Falcon", "Ann"])
    text = "Ann moved bluebird and BLUE FALCON, not Annual."
    assert [text[s.start:s.end] for s in rec.find(text)] == ["Ann", "bluebird", "BLUE FALCON"]


def test_term_list_scales():
    terms = [f"CUST{n:06d}" for n in range(20000)]
    rec = TermListRecognizer.build("CUSTOMER_ID", terms, case_sensitive=True)
    text = "refund CUST012345 and CUST999999 and CUST0123456"
    assert [text[s.start:s.end] for s in rec.find(text)] == ["CUST012345"]


def test_validators():
    assert load_validator("luhn")("4111 1111 1111 1111")
    assert load_validator("stdnum.de.idnr")("36 574 261 809")
    with pytest.raises(ValueError):
        load_validator("os.system")


def test_a_weak_value_that_is_itself_a_keyword_does_not_hide_the_assignment_after_it():
    from proxy.pii.recognizers.secrets import SecretRecognizer
    text = "secret: password = hunterhunter"
    spans = list(SecretRecognizer().find(text))
    assert [(text[s.start:s.end], s.entity) for s in spans] == [("hunterhunter", "PASSWORD")]
