"""The policy's ``audit`` section: schema and compilation into a frozen AuditConfig."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from .units import DURATION_PATTERN, SIZE_PATTERN, expand_env, parse_duration, parse_size

LEVELS = ("metadata", "redacted", "full")
DEFAULT_DIR = "./var/audit"
DEFAULT_KEY_ENV = "AIFW_AUDIT_SIGNING_KEY"

_SIZE = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SIZE_PATTERN}]}
_DURATION = {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                       {"type": "string", "pattern": DURATION_PATTERN}]}

LEVEL_SCHEMA: dict[str, Any] = {
    "enum": list(LEVELS),
    "description": "What an audit record holds: metadata (no text, the default), redacted "
                   "(request text as forwarded and answer text after PII masking) or full "
                   "(request text as forwarded and the answer as produced).",
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Tamper-evident audit log: one hash-chained JSON line per exchange.",
    "properties": {
        "enabled": {"type": "boolean", "description": "Write audit records (default true)."},
        "sink": {"enum": ["file", "stdout"],
                 "description": "file: rotated JSON-lines files in `path` (default); stdout: "
                                "one JSON line per record on standard output (Kubernetes)."},
        "path": {"type": "string",
                 "description": "Directory for audit files; ${VAR} and ${VAR:-default} are "
                                "expanded. Default ${AIFW_AUDIT_DIR:-./var/audit}."},
        "level": LEVEL_SCHEMA,
        "rotate": {
            "type": "object", "additionalProperties": False,
            "description": "Start a new file when the current one passes a size or an age.",
            "properties": {
                "maxBytes": {**_SIZE, "description": "Size limit per file, e.g. 104857600 or "
                                                     "\"100MB\" (default 100MB)."},
                "interval": {**_DURATION, "description": "Age limit per file, e.g. \"1d\" "
                                                         "(default 1d)."},
            },
        },
        "flushInterval": {**_DURATION, "description": "How often queued records are written "
                                                      "and synced to disk (default 1s)."},
        "queueSize": {"type": "integer", "minimum": 1,
                      "description": "Records that may wait for the writer (default 10000)."},
        "checkpointEvery": {"type": "integer", "minimum": 1,
                            "description": "Write a signed checkpoint after this many records "
                                           "(default 1000); also at rotation and shutdown."},
        "checkpointInterval": {**_DURATION,
                               "description": "Also write a checkpoint when records have waited "
                                              "this long without one (default 5m)."},
        "failureMode": {"enum": ["closed", "open"],
                        "description": "When the sink cannot be written: closed (default) "
                                       "answers new requests with 503 until it recovers; open "
                                       "lets traffic through and counts lost records."},
        "signingKeyEnv": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                          "description": "Environment variable holding the checkpoint signing "
                                         "key (default AIFW_AUDIT_SIGNING_KEY)."},
        "fsync": {"type": "boolean",
                  "description": "fsync the file at every flush (default true)."},
    },
}

# A scope may override only the level: `scopes[].audit: {level: full}`.
SCOPE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "description": "Audit settings for exchanges this scope matches.",
    "properties": {"level": LEVEL_SCHEMA},
}


@dataclass(frozen=True, slots=True)
class AuditConfig:
    enabled: bool = True
    sink: str = "file"
    path: str = DEFAULT_DIR
    level: str = "metadata"
    max_bytes: int = 100_000_000
    rotate_interval: float = 86400.0
    flush_interval: float = 1.0
    queue_size: int = 10_000
    checkpoint_every: int = 1000
    checkpoint_interval: float = 300.0
    failure_mode: str = "closed"
    signing_key_env: str = DEFAULT_KEY_ENV
    fsync: bool = True

    def same_destination(self, other: "AuditConfig") -> bool:
        return (self.sink, os.path.abspath(self.path)) == (other.sink, os.path.abspath(other.path))


def compile_section(raw: Mapping[str, Any] | None, ctx: Any = None) -> AuditConfig:
    """Apply defaults to a validated section. Relative paths are relative to the working
    directory (like the default ./var/audit), not to the policy file."""
    raw = raw or {}
    rotate = raw.get("rotate") or {}
    path = raw.get("path")
    path = expand_env(path) if path else (os.environ.get("AIFW_AUDIT_DIR") or DEFAULT_DIR)
    return AuditConfig(
        enabled=bool(raw.get("enabled", True)),
        sink=raw.get("sink", "file"),
        path=path,
        level=raw.get("level", "metadata"),
        max_bytes=parse_size(rotate.get("maxBytes", 100_000_000)),
        rotate_interval=parse_duration(rotate.get("interval", 86400)),
        flush_interval=parse_duration(raw.get("flushInterval", 1.0)),
        queue_size=int(raw.get("queueSize", 10_000)),
        checkpoint_every=int(raw.get("checkpointEvery", 1000)),
        checkpoint_interval=parse_duration(raw.get("checkpointInterval", 300)),
        failure_mode=raw.get("failureMode", "closed"),
        signing_key_env=raw.get("signingKeyEnv", DEFAULT_KEY_ENV),
        fsync=bool(raw.get("fsync", True)),
    )
