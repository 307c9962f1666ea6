"""False-positive yardstick for the context rules: an application's own users asking ordinary,
on-topic questions of an application whose system prompt has restrictive clauses.

Random benign prompts paired with random system prompts never reuse the words of the restrictive
clauses; real users of the application do ("Only answer questions about cooking recipes" -> "Which
recipes ..."), so this set is written app by app (context_benign_apps.yaml). Every turn in it is
benign on purpose, so any block is a false positive a customer would hit.
"""
from collections import Counter
from pathlib import Path

import yaml

from proxy.detection.assess import assess
from proxy.detection.settings import compile_settings

DATA = Path(__file__).with_name("context_benign_apps.yaml")
APPS = yaml.safe_load(DATA.read_text(encoding="utf-8"))
# The shipped default policy (model included): what a customer gets on day one.
SETTINGS = compile_settings({})


def test_data_is_well_formed():
    ids = [app["id"] for app in APPS]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for app in APPS:
        assert set(app) == {"id", "lang", "system", "users"}, app["id"]
        assert app["system"].strip() and app["lang"].strip(), app["id"]
        users = app["users"]
        assert len(users) >= 5 and all(isinstance(u, str) and u.strip() for u in users), app["id"]
        assert len(users) == len(set(users)), app["id"]
    assert len(APPS) >= 40
    # about a quarter of the applications are written in other languages than English
    assert sum(app["lang"] != "en" for app in APPS) >= len(APPS) // 5


def flagged_turns():
    out = []
    for app in APPS:
        for user in app["users"]:
            a = assess(SETTINGS, [("system", app["system"]), ("user", user)])
            if a.attack:
                out.append((app["id"], user, a.score, a.rule_ids))
    return out


def test_on_topic_user_turns_are_not_blocked():
    flagged = flagged_turns()
    total = sum(len(app["users"]) for app in APPS)
    by_ids = Counter("+".join(ids) for _, _, _, ids in flagged)
    lines = [f"{len(flagged)} of {total} benign on-topic turns blocked "
             f"(threshold {SETTINGS.detector.threshold}); by rule ids: {dict(by_ids.most_common())}"]
    lines += [f"  {app_id}: {user!r} score={score} ids={','.join(ids)}"
              for app_id, user, score, ids in flagged]
    assert not flagged, "\n".join(lines)
