"""Per-process subsystems around the policy holder (audit log, telemetry), and start checks."""
from __future__ import annotations

from .reload import PolicyHolder


def attach_subsystems(holder: PolicyHolder, *, logging: bool = False, worker: int = 0,
                      workers: int = 1) -> None:
    """Create the process-wide audit log and telemetry the policy configures. ``worker``: this
    process's index under ``aifw serve --workers N`` (``workers``); each writes its own audit
    chain, and its ``open`` entries say how many chains there are."""
    from .audit.runtime import AuditLog
    from .audit.sinks import chain_name
    from .telemetry import Telemetry
    holder.telemetry = Telemetry(holder.policy.sections["telemetry"])
    if logging:
        # before anything logs: unconfigured structlog would print to stdout, where a stdout
        # audit sink writes its records
        holder.telemetry.setup_logging()
    holder.audit = AuditLog(holder.policy.sections["audit"], holder.services,
                            chain=chain_name(worker), workers=workers)
    holder.telemetry.watch_audit(holder.audit)
    holder.telemetry.watch_breakers(holder.breaker_states)
    holder.telemetry.watch_reachability(holder.upstreams_reachable)
    holder.telemetry.watch_backends(holder.services.backend_up)


def check_workers(policy, workers: int) -> str | None:
    """Refuse setups that would silently weaken the policy when several workers share a port."""
    if workers <= 1:
        return None
    from .limits import check_workers as limits_check
    for scope in (policy.base, *policy.scopes):
        for guard in scope.guards:
            section = getattr(guard, "section", None)
            if guard.name == "ratelimit" and section is not None:
                problem = limits_check(section, workers)
                if problem:
                    return problem
    return None
