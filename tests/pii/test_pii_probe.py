"""The shared probe lets recognisers skip text: each skip must be one that could never have
found anything. Property tests over texts built from entity fragments, separators, Unicode
digits and case-folding traps check every shortcut against the plain pattern scan."""
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.pii.recognizers import birthdate, secrets
from proxy.pii.recognizers.financial import CardRecognizer, IbanRecognizer, SsnRecognizer
from proxy.pii.recognizers.network import IpRecognizer, _two_colons_close
from proxy.pii.recognizers.phone import _CANDIDATE, _EXTENSION, PhoneRecognizer, _clustered_runs
from proxy.pii.recognizers.probe import Probe

FRAGMENTS = [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005", "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000", "gb82west12345698765432", "536-22-8741", "536 22 8741", "SSN ",
    "192.168.1.20", "2001:db8::1", "fe80::", "12:30:45", "+44 20 7946 0958", "+49 (0)30 901820",
    "(0)", "(415) ", "555-0132", "+49 (0) (30) 9018", "12 (0) (3) 4", ") (", " (", "8 (301) 123-45-67", " ext. 12", "x123", " extension 4", "#5",
    "0044 ", "001-", "2024-03-02", "12/03/1985", "born ", "Date of Birth: ", "NÉ le ", "DOB",
    "sk-proj-", "sk-ant-", "AKIA", "ASIA", "A3T", "ghp_", "github_pat_", "xoxb-", "_live_", "whsec_",
    "AIza", "-----BEGIN PRIVATE KEY-----", "PRIVATE KEY", "eyJ", "password=", "PASSWORD: ", "paſſword=",
    "to\u212aen: ", "api_key=", "aws_secret_access_key = ", "https://u:p@h", "://", "@",
    "٣٤٥", "١٢٣٤٥٦٧", "²", "０１２", "İ", "ß", "\u00a0", "\n",
]
ALPHABET = "0123456789 -./()+:#x_@=AaBbKkSs\u0663"
texts = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet=ALPHABET, max_size=6)),
                 max_size=14).map("".join)


def _starts(probe: Probe) -> set[int]:
    return {a for a, _ in probe.runs}


@settings(max_examples=400, deadline=None)
@given(texts)
def test_numeric_patterns_start_where_a_digit_run_does(text):
    probe = Probe(text)
    starts = _starts(probe)
    for pattern in (CardRecognizer._pattern, SsnRecognizer._pattern, IpRecognizer._v4):
        assert all(m.start() in starts for m in pattern.finditer(text))
    assert all(m.start() + 2 in starts for m in IbanRecognizer._pattern.finditer(text))
    assert all(b - a in (3, 9) for m in SsnRecognizer._pattern.finditer(text)
               for a, b in probe.runs if a == m.start())


@settings(max_examples=400, deadline=None)
@given(texts)
def test_anchored_ipv4_scan_finds_what_the_full_scan_finds(text):
    v4 = [m.span() for m in IpRecognizer._v4.finditer(text)]
    found = [(s.start, s.end) for s in IpRecognizer().find(text, Probe(text))]
    assert [span for span in found if span in v4] == v4


@settings(max_examples=400, deadline=None)
@given(texts)
def test_phone_candidates_are_the_full_scan_less_the_short_ones(text):
    probe = Probe(text)
    runs = probe.runs
    anchored = [m.span() for m in PhoneRecognizer._candidates(text, 0, len(text), runs,
                                                               _clustered_runs(text, runs))]
    full = [m for m in _CANDIDATE.finditer(text)]
    judged = [m.span() for m in full
              if sum(c.isdigit() for c in _EXTENSION.sub("", m.group())) >= 7]
    assert set(judged) <= set(anchored) <= {m.span() for m in full}


@settings(max_examples=400, deadline=None)
@given(texts)
def test_needles_are_present_whenever_a_pattern_matches(text):
    probe = Probe(text)
    for rule in secrets._RULES:
        if rule.pattern.search(text):
            assert probe.has_any(rule.needles), rule.entity
    if secrets._JWT.search(text):
        assert probe.has_any(secrets._JWT_NEEDLE)
    if birthdate._BIRTH.pattern.search(text):
        assert probe.has_any(birthdate.BIRTH_STEMS)
    if any(m.group().count(":") >= 2 for m in IpRecognizer._v6.finditer(text)):
        assert _two_colons_close(text)


def test_case_folding_traps_still_reach_the_patterns():
    for text in ("paſſword=hunter22", "to\u212aen: abc123xyz", "PASSWORD: s3cret!"):
        spans = list(secrets.SecretRecognizer().find(text))
        assert [s.entity for s in spans] == ["PASSWORD"], text


LOCAL = st.text(alphabet="ab.%+-_1é٣", min_size=0, max_size=70)
email_texts = st.lists(st.one_of(st.sampled_from(["@", "@@", " ", "example.com", "x.co.uk", "-", ".",
                                                  "\u00a0", "a" * 64, "b" * 65, "<", "mail@"]), LOCAL),
                       max_size=10).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(email_texts, texts))
def test_email_scan_from_each_at_sign_finds_what_the_full_scan_finds(text):
    from proxy.pii.recognizers.network import EmailRecognizer
    rec = EmailRecognizer()
    assert [m.span() for m in rec._matches(text)] == [m.span() for m in rec._pattern.finditer(text)]


@settings(max_examples=400, deadline=None)
@given(st.one_of(texts, st.text(alphabet="ab 12٣²", max_size=20)))
def test_digit_runs_are_the_unicode_digit_runs(text):
    import regex
    assert Probe(text).runs == [m.span() for m in regex.finditer(r"\d+", text)]


veto_texts = st.lists(st.sampled_from(["order", "Order", "ID", "id", "ids", "no.", " ", ":", "s", "<",
                                       "_", "é", "1", "ſerial", "account", "the", "-", "İd", "ß", "Tel",
                                       "TÉLÉPHONE", "call", "K", "\u212a", "phone", "ss#", "ss no", "né"]),
                      max_size=10).map("".join)


@settings(max_examples=500, deadline=None)
@given(veto_texts, st.integers(0, 60), st.integers(0, 60))
def test_context_words_found_through_the_folded_window_are_the_pattern_matches(text, lo, hi):
    from proxy.pii.recognizers.financial import _SSN_CONTEXT
    from proxy.pii.recognizers.phone import NOT_PHONE_WORDS, PHONE_CONTEXT_WORDS
    from proxy.pii.recognizers.context import Context
    lo, hi = sorted((min(lo, len(text)), min(hi, len(text))))
    for context in (Context.of(NOT_PHONE_WORDS), Context.of(PHONE_CONTEXT_WORDS), _SSN_CONTEXT,
                    birthdate._BIRTH, Context.of(["Straße", "Kunden-Nr"])):
        full = [m.span() for m in context.pattern.finditer(text, lo, hi)]
        assert [m.span() for m in context._matches(text, lo, hi)] == full
        assert (context.last(text, lo, hi) and context.last(text, lo, hi).span()) == (full[-1] if full else None)
        assert context.any_in(text, lo, hi) == bool(full)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=5, max_size=34),
    st.sampled_from(["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606",
                     "NL91ABNA0417164300", "CH9300762011623852957", "GB82WEST1234569876543", "GB83WEST12345698765432"])))
def test_iban_checksum_gate_never_drops_a_valid_iban(compact):
    from stdnum import iban

    from proxy.pii.recognizers.financial import iban_checksum_ok
    if iban.is_valid(compact):
        assert iban_checksum_ok(compact)
    # and every valid sample passes both
    assert iban_checksum_ok("GB82WEST12345698765432") and iban.is_valid("GB82WEST12345698765432")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789 .-/()+xX#extnsioETXN", max_size=24))
def test_an_extension_is_only_looked_for_after_an_x_or_a_hash(raw):
    if _EXTENSION.search(raw) is not None:
        assert "x" in raw or "X" in raw or "#" in raw
