"""Top-level policy sections owned by subsystems other than the core (audit, telemetry, ...).

Each entry: name -> SectionSpec(schema, compile). The core policy compiler validates the
section against ``schema`` and stores ``compile(raw, ctx)`` in ``Policy.sections[name]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True, slots=True)
class SectionSpec:
    name: str
    schema: Mapping[str, Any]
    compile: Callable[[Mapping[str, Any], Any], Any]   # (raw section or {}, CompileContext)
    # What a scope may override of this section (None: the section is policy-wide only).
    scope_schema: Mapping[str, Any] | None = None


from ..audit import config as _audit_config          # noqa: E402
from ..cost import table as _cost_table              # noqa: E402
from ..resilience import runtime as _resilience      # noqa: E402
from ..telemetry import config as _telemetry_config  # noqa: E402

SECTION_SPECS: tuple[SectionSpec, ...] = (
    SectionSpec("audit", _audit_config.SCHEMA, _audit_config.compile_section, _audit_config.SCOPE_SCHEMA),
    SectionSpec("telemetry", _telemetry_config.SCHEMA, _telemetry_config.compile_section),
    SectionSpec("cost", _cost_table.SCHEMA, _cost_table.compile_section),
    SectionSpec("resilience", _resilience.SCHEMA, _resilience.compile_section),
)

SECTIONS: dict[str, SectionSpec] = {spec.name: spec for spec in SECTION_SPECS}
