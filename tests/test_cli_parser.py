"""The command line imports only the module that owns the command it runs."""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from proxy import cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


@pytest.mark.parametrize("module", sorted(cli.EXTENSIONS))
def test_extension_map_names_what_each_module_registers(module):
    # A stale map would make a command unknown whenever it is not the one being run.
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert set(sub.choices) == set(cli.EXTENSIONS[module])


def test_help_and_unknown_commands_see_every_command():
    everything = {"serve", "policy", "keys"} | {c for cs in cli.EXTENSIONS.values() for c in cs}
    for argv in ([], ["--help"], ["-h"], ["no-such-command"]):
        assert _commands(cli.build_parser(argv)) == everything


@pytest.mark.parametrize("argv, present", [
    (["audit", "verify", "x.jsonl"], "audit"),
    (["eval"], "eval"),
    (["rules", "test"], "rules"),
    (["import", "litellm", "c.yaml"], "import"),
    (["pii", "decrypt"], "pii"),
])
def test_each_extension_command_is_reachable(argv, present):
    commands = _commands(cli.build_parser(argv))
    assert present in commands and "serve" in commands


def _python(code: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter in the repository (what it imports is its own)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=cli.__file__.rsplit("/proxy/", 1)[0])


def test_policy_check_imports_neither_other_commands_nor_logging(tmp_path):
    code = ("import sys, io, contextlib; from proxy.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    code = main(['policy', 'check', 'policies/default.yaml'])\n"
            "heavy = [m for m in ('structlog', 'presidio_anonymizer', 'cryptography', 'proxy.audit.cli', 'proxy.audit.query', 'proxy.importers.cli',"
            " 'proxy.replay', 'proxy.scan', 'proxy.detection.cli', 'proxy.pii.cli', 'opentelemetry', 'aiohttp')"
            " if m in sys.modules]\n"
            "print(code, heavy)")
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "0 []", out.stdout + out.stderr


def test_a_policy_compiled_to_serve_has_presidio_loaded(tmp_path):
    # `policy check` leaves presidio's operators unloaded; serving must not leave their import to
    # the first request that masks.
    code = ("import sys; from proxy.policy.compile import compile_policy; from proxy.services import Services\n"
            "compile_policy('bench/policies/all-guards.yaml', Services(), {'AIFW_UPSTREAM_URL': 'http://127.0.0.1:9/v1', 'OPENAI_API_KEY': 'k'})\n"
            "from proxy.pii import operators\n"
            "print(operators._presidio is not None, 'presidio_anonymizer' in sys.modules)")
    out = _python(code)
    assert out.returncode == 0 and out.stdout.strip() == "True True", out.stdout + out.stderr
