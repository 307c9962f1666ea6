"""Hand-written probes of the context rules in 18 languages (tests/detection/context_probes.yaml).

Every ``attack`` probe must reach the detection threshold with the default settings and every
``benign`` one must stay below it; a failure lists every wrong probe (language, expectation,
score, rule ids, user turn), so a vocabulary change is judged on all languages at once.
"""
from collections import Counter
from pathlib import Path

import pytest
import yaml

from proxy.detection.assess import assess
from proxy.detection.settings import compile_settings

PROBES_FILE = Path(__file__).with_name("context_probes.yaml")
PROBES = yaml.safe_load(PROBES_FILE.read_text(encoding="utf-8"))
SETTINGS = compile_settings({})
LANGUAGES = ("en", "ar", "bn", "zh", "tl", "fr", "de", "hi", "id", "it", "ja", "ko", "pt", "ru",
             "es", "th", "tr", "vi")


def test_probe_file_covers_every_language_with_attacks_and_benign_turns():
    assert all(set(p) == {"lang", "system", "user", "expect"} for p in PROBES)
    assert {p["expect"] for p in PROBES} == {"attack", "benign"}
    per_lang = Counter((p["lang"], p["expect"]) for p in PROBES)
    for lang in LANGUAGES:
        assert per_lang[(lang, "attack")] >= 10 and per_lang[(lang, "benign")] >= 5, lang
    assert {p["lang"] for p in PROBES} == set(LANGUAGES)


def wrong_probes(settings, probes) -> list[str]:
    """One line per probe whose verdict differs from its expectation."""
    wrong = []
    for p in probes:
        a = assess(settings, [("system", p["system"]), ("user", p["user"])])
        if a.attack != (p["expect"] == "attack"):
            wrong.append(f"{p['lang']:>2} {p['expect']:<6} score={a.score:5.2f} "
                         f"{','.join(a.rule_ids) or '-'}  {p['user']!r}")
    return wrong


@pytest.mark.parametrize("lang", LANGUAGES)
def test_probes(lang):
    wrong = wrong_probes(SETTINGS, [p for p in PROBES if p["lang"] == lang])
    assert not wrong, f"{len(wrong)} wrong probes (threshold {SETTINGS.detector.threshold}):\n" + \
        "\n".join(wrong)


def test_the_check_can_fail():
    # Without the context rule set the same attacks are mostly invisible: the probes test them.
    no_context = compile_settings({"ruleSets": ["injection", "jailbreak", "evasion"]})
    attacks = [p for p in PROBES if p["expect"] == "attack"]
    assert len(wrong_probes(no_context, attacks)) > len(attacks) // 2
