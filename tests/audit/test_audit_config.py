"""The audit policy section: schema, defaults, units, env expansion."""
from __future__ import annotations

import jsonschema
import pytest

from proxy.audit.config import SCHEMA, compile_section
from proxy.policy.sections import SECTIONS


def test_defaults(monkeypatch):
    monkeypatch.delenv("AIFW_AUDIT_DIR", raising=False)
    cfg = compile_section({})
    assert (cfg.sink, cfg.path, cfg.level, cfg.failure_mode) == ("file", "./var/audit", "metadata", "closed")
    assert cfg.max_bytes == 100_000_000 and cfg.rotate_interval == 86400
    assert cfg.signing_key_env == "AIFW_AUDIT_SIGNING_KEY"


def test_env_directory_and_units(monkeypatch):
    monkeypatch.setenv("AIFW_AUDIT_DIR", "/data/audit")
    assert compile_section({}).path == "/data/audit"
    monkeypatch.setenv("TEAM", "red")
    cfg = compile_section({"path": "/logs/${TEAM}/${MISSING:-x}", "rotate": {"maxBytes": "64MiB",
                           "interval": "12h"}, "flushInterval": "250ms", "checkpointInterval": "1m"})
    assert cfg.path == "/logs/red/x"
    assert cfg.max_bytes == 64 * 1024 * 1024 and cfg.rotate_interval == 43200
    assert cfg.flush_interval == 0.25 and cfg.checkpoint_interval == 60


@pytest.mark.parametrize("bad", [
    {"level": "everything"}, {"sink": "s3"}, {"rotate": {"maxBytes": "lots"}},
    {"queueSize": 0}, {"unknown": 1}, {"failureMode": "maybe"}, {"signingKeyEnv": "1BAD"},
])
def test_schema_rejects(bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_every_property_is_described():
    def walk(schema):
        for name, prop in schema.get("properties", {}).items():
            assert "description" in prop, name
            walk(prop)
    walk(SCHEMA)


def test_registered_sections():
    assert SECTIONS["audit"].compile({"level": "full"}, None).level == "full"
    assert SECTIONS["telemetry"].compile({"serviceName": "fw"}, None).service_name == "fw"
