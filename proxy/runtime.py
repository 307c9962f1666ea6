"""Per-process subsystems around the policy holder (audit log, telemetry), and start checks."""
from __future__ import annotations

from .reload import PolicyHolder


def attach_subsystems(holder: PolicyHolder) -> None:
    """Create the process-wide subsystems the policy configures."""
    return None


def check_workers(policy, workers: int) -> str | None:
    """Refuse setups that would silently weaken the policy (e.g. per-process limits × workers)."""
    return None
