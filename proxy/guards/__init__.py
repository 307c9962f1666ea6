"""The guards a policy can use, listed explicitly (no discovery)."""
from __future__ import annotations

from .base import GuardSpec
from . import access
from . import hook
from . import injection
from . import pii
from . import ratelimit
from . import structured
from . import tools

# Keep this a plain tuple: adding a guard is one line here.
GUARD_SPECS: tuple[GuardSpec, ...] = (
    access.SPEC,
    hook.SPEC,
    injection.SPEC,
    pii.SPEC,
    ratelimit.SPEC,
    tools.SPEC,
    structured.SPEC,
)

GUARDS: dict[str, GuardSpec] = {spec.name: spec for spec in GUARD_SPECS}
