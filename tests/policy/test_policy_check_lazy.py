"""What `aifw policy check` leaves out (numpy, the character model, jsonschema for a valid policy,
loading the injection model when these bytes loaded before) changes nothing it reports, and a
start still has all of it before it is ready."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from proxy import lazyimport, precompiled
from proxy.detection import model, modelcheck
from proxy.policy.compile import check_files

ROOT = Path(__file__).resolve().parents[2]
HEAD = """\
version: 1
upstreams:
  openai: {provider: openai, baseUrl: "http://127.0.0.1:9/v1"}
"""
LEFT_OUT = ("numpy", "jsonschema", "asyncio", "proxy.detection.charlm", "proxy.detection.model",
            "proxy.detection.features", "proxy.detection.indirect")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("AIFW_CACHE_DIR", str(d))
    return d


def _run(code: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIFW_CACHE_DIR": str(cache), "OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_check_of_the_shipped_policies_imports_none_of_it(tmp_path):
    cache = tmp_path / "cache"
    prepare = _run("import sys; from proxy.cli import main; "
                   "sys.argv = ['aifw', 'policy', 'check', '--prepare', 'policies/default.yaml', "
                   "'policies/strict.yaml']; main()", cache)
    assert prepare.returncode == 0, prepare.stderr
    code = ("import json, sys; from proxy.policy.compile import check_files; "
            "problems = check_files(['policies/default.yaml', 'policies/strict.yaml']); "
            f"print(json.dumps([[str(p) for p in problems], [m for m in {LEFT_OUT!r} if m in sys.modules]]))")
    problems, imported = json.loads(_run(code, cache).stdout)
    assert problems == [] and imported == []


def test_a_start_imports_it_before_it_is_ready(tmp_path):
    code = ("import json, sys; from proxy.policy.compile import compile_policy; "
            "from proxy.detection import normalize, scanviews; from proxy import toolargs; "
            "compile_policy('policies/default.yaml'); "
            "print(json.dumps([type(normalize.charlm).__name__, type(normalize.indirect).__name__, "
            "type(scanviews.np).__name__, type(toolargs.jsonschema).__name__]))")
    # default.yaml has no tools or structured guard: jsonschema stays out of a start too
    assert json.loads(_run(code, tmp_path / "cache").stdout) == ["module", "module", "module", "LazyModule"]
    tools = tmp_path / "tools.yaml"
    tools.write_text(HEAD + "guards:\n  tools: {allow: ['*']}\n")
    code = ("import sys; from proxy.policy.compile import compile_policy; from proxy import toolargs; "
            f"compile_policy({str(tools)!r}); print(type(toolargs.jsonschema).__name__)")
    assert _run(code, tmp_path / "cache").stdout.strip() == "module"


def _broken_models(tmp_path: Path) -> dict[str, Path]:
    out = {}
    (out.setdefault("garbage", tmp_path / "garbage.npz")).write_bytes(b"not a model at all\n" * 10)
    (out.setdefault("empty", tmp_path / "empty.npz")).write_bytes(b"")
    small = tmp_path / "small.npz"
    model.save(small, np.zeros(7, np.float32), 0.0, 0.5, {})
    out["wrong shape"] = small
    npy = tmp_path / "npy.npz"
    np.save(npy.with_suffix(".npy"), np.zeros(3))
    npy.write_bytes(npy.with_suffix(".npy").read_bytes())
    out["an .npy file"] = npy
    out["missing"] = tmp_path / "missing.npz"
    return out


def _outcome(fn, path: Path) -> str:
    try:
        fn(str(path))
    except Exception as exc:  # noqa: BLE001 - what is raised is what is compared
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_a_broken_model_file_fails_the_check_as_loading_it_does(tmp_path, cache_dir):
    for name, path in _broken_models(tmp_path).items():
        expected = _outcome(model.load, path)
        assert expected != "ok", name
        for _ in range(2):       # a failure is never remembered
            assert _outcome(modelcheck.check, path) == expected, name


def test_a_model_file_that_loaded_is_known_to_load_until_its_bytes_change(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "m.npz"
    path.write_bytes(modelcheck.DEFAULT_MODEL.read_bytes())
    modelcheck.check(str(path))                       # loads it, and remembers
    calls = []
    monkeypatch.setattr(model, "load", lambda *a: calls.append(a) or (_ for _ in ()).throw(ValueError("x")))
    modelcheck.check(str(path))                       # from the cache: load is not called
    assert calls == []
    path.write_bytes(path.read_bytes()[:-1])          # changed bytes: loaded (and fail) again
    with pytest.raises(ValueError):
        modelcheck.check(str(path))
    assert len(calls) == 1


def test_a_start_leaves_the_answer_for_the_check(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "m.npz"
    path.write_bytes(modelcheck.DEFAULT_MODEL.read_bytes())
    loaded = modelcheck.load(str(path))
    assert loaded.weights.shape == model.load(str(path)).weights.shape
    monkeypatch.setattr(model, "load", lambda *a: (_ for _ in ()).throw(AssertionError("loaded")))
    modelcheck.check(str(path))


def test_without_a_cache_the_model_is_loaded_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFW_CACHE_DIR", "off")
    path = _broken_models(tmp_path)["wrong shape"]
    assert _outcome(modelcheck.check, path) == _outcome(model.load, path)


@pytest.mark.parametrize("cache", ["warm", "off"])
def test_policy_check_reports_a_broken_model_file(tmp_path, monkeypatch, cache):
    monkeypatch.setenv("AIFW_CACHE_DIR", str(tmp_path / "cache") if cache == "warm" else "off")
    bad = _broken_models(tmp_path)["wrong shape"]
    policy = tmp_path / "p.yaml"
    policy.write_text(HEAD + f"guards:\n  injection:\n    model: {{path: {bad}}}\n")
    for _ in range(2):
        problems = [str(p) for p in check_files([str(policy)])]
        assert problems == [f"{policy}:5: $.guards.injection: cannot compile guard 'injection': "
                            f"{bad}: model has 7 features, expected {model.N_FEATURES}"]


def test_policy_check_reports_schema_errors_without_jsonschema_loaded_first(tmp_path):
    # a fresh process: the first schema error is where jsonschema gets imported
    bad = tmp_path / "p.yaml"
    bad.write_text(HEAD + "mode: monitr\nguards:\n  access: {maxOutputTokens: -1}\n")
    code = ("import json; from proxy.policy.compile import check_files; "
            f"print(json.dumps([str(p) for p in check_files([{str(bad)!r}])]))")
    out = sorted(json.loads(_run(code, tmp_path / "cache").stdout))
    assert out == [f"{bad}:4: $.mode: 'monitr' is not one of ['enforce', 'monitor'] (did you mean 'monitor'?)",
                   f"{bad}:6: $.guards.access.maxOutputTokens: -1 is less than the minimum of 1"]


def test_a_lazy_module_becomes_the_module_on_first_use():
    ns: dict = {}
    ns["js"] = lazyimport.lazy("json", ns, "js")
    assert isinstance(ns["js"], lazyimport.LazyModule)
    stand_in = ns["js"]
    assert stand_in.dumps([1]) == "[1]"
    assert ns["js"] is json
    assert stand_in.loads("2") == 2          # a stand-in kept elsewhere still works
    ns["m"] = lazyimport.lazy("json", ns, "m")
    assert lazyimport.load(ns, "m") is json and ns["m"] is json
    assert lazyimport.load(ns, "m") is json


def test_precompiled_code_digest_finds_the_libraries_it_does_not_import():
    assert precompiled.code_digest() == precompiled.code_digest.__wrapped__()
