"""Files a policy references (term lists, rule files, the model) are part of its digest and of
hot reload; the keys file is watched but not digested."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import yaml

from proxy.detection.rules import DEFAULT_RULES_DIR
from proxy.keys import create_key
from proxy.policy.compile import compile_policy
from proxy.policy.sources import SourceRecorder, policy_digest
from proxy.reload import PolicyHolder
from proxy.services import Services
from tests.conftest import minimal_policy

ENV = {"FAKE_URL": "http://127.0.0.1:9", "FAKE_OPENAI_URL": "http://127.0.0.1:9/v1",
       "PROVIDER_KEY": "sk-provider"}
PII = {"termLists": [{"name": "CODENAME", "file": "codenames.txt"}], "entities": {"CODENAME": "replace"}}


def compile(path: Path):
    return compile_policy(str(path), Services(), ENV)


def write(directory: Path, guards: dict, terms: str = "bluefin\n", **extra) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "codenames.txt").write_text(terms)
    path = directory / "policy.yaml"
    path.write_text(minimal_policy(guards=guards, **extra))
    return path


def rewrite(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_policy_without_files_keeps_the_digest_of_its_bytes(tmp_path):
    path = write(tmp_path, {"access": {}})
    policy = compile(path)
    assert policy.sources == ()
    assert policy.digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_digest_covers_term_lists_and_is_the_same_on_every_host(tmp_path):
    one = compile(write(tmp_path / "a", {"pii": PII}))
    elsewhere = compile(write(tmp_path / "b" / "deeper", {"pii": PII}))
    edited = compile(write(tmp_path / "c", {"pii": PII}, "bluefin\nmarlin\n"))
    assert one.digest == elsewhere.digest                   # paths are not part of it
    assert edited.digest != one.digest                      # contents are
    assert [f.path for f in one.sources] == [str(tmp_path / "a" / "codenames.txt")]
    assert one.sources[0].sha256 == hashlib.sha256(b"bluefin\n").hexdigest()
    raw = (tmp_path / "a" / "policy.yaml").read_bytes()
    assert one.digest == policy_digest(raw, one.sources) != "sha256:" + hashlib.sha256(raw).hexdigest()


def test_rule_files_their_directory_and_the_model_are_sources(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    path = write(tmp_path, {"injection": {"rulesDir": "rules"}})
    policy = compile(path)
    read = {Path(f.path).name for f in policy.sources}
    assert {"injection.yaml", "jailbreak.yaml", "context.yaml", "injection_model.npz"} <= read
    assert str(rules) in policy.watched_files               # a rule file added or removed
    text = (rules / "evasion.yaml").read_text()
    rewrite(rules / "evasion.yaml", text.replace("message:", "message: edited", 1))
    assert compile(path).digest != policy.digest


def test_the_keys_file_is_watched_but_not_digested(tmp_path):
    path = write(tmp_path, {"access": {}}, identity={"mode": "virtualKeys", "keysFile": "keys.yaml"},
                 upstreams={"openai": {"provider": "openai", "baseUrl": "${FAKE_OPENAI_URL}",
                                       "apiKey": "${PROVIDER_KEY}"}},
                 routes=[{"models": ["*"], "upstream": "openai"}])
    create_key(str(tmp_path / "keys.yaml"), user="alice")
    before = compile(path)
    create_key(str(tmp_path / "keys.yaml"), user="bob")
    after = compile(path)
    assert str(tmp_path / "keys.yaml") in after.watched_files
    assert after.digest == before.digest and after.keys.digest != before.keys.digest


def test_the_watcher_sees_a_term_list_edit_and_reloads_it(tmp_path):
    path = write(tmp_path, {"pii": PII})
    holder = PolicyHolder(str(path), env=ENV)
    old = holder.policy.digest
    assert not holder.changed()
    rewrite(tmp_path / "codenames.txt", "bluefin\nmarlin\n")
    assert holder.changed()
    assert holder.reload() and holder.policy.digest != old and not holder.changed()


def test_a_reload_that_failed_for_a_missing_term_list_retries_when_it_appears(tmp_path):
    path = write(tmp_path, {"access": {}})
    holder = PolicyHolder(str(path), env=ENV)
    data = yaml.safe_load(path.read_text())
    data["guards"] = {"pii": {**PII, "termLists": [{"name": "CODENAME", "file": "later.txt"}]}}
    rewrite(path, yaml.safe_dump(data))
    assert holder.changed() and not holder.reload()
    assert "later.txt" in holder.last_error and not holder.changed()
    (tmp_path / "later.txt").write_text("marlin\n")
    assert holder.changed()                 # the file the failed policy needed now exists
    assert holder.reload() and holder.policy.sources[0].path == str(tmp_path / "later.txt")


def test_a_file_that_changes_while_the_policy_compiles_is_read_again(tmp_path):
    terms = tmp_path / "t.txt"
    terms.write_text("a\n")
    rec = SourceRecorder()
    rec.read(str(terms))
    rewrite(terms, "a\nb\n")
    rec.read(str(terms))                    # a second part of the policy sees another version
    (only,) = rec.files
    assert only.sha256 == hashlib.sha256(b"a\n").hexdigest() and only.stamp is None
