"""What the benchmark compares. Each target is (name, command, env); placeholders in the
command and env values: {python} (this interpreter), {port} (a free port for the target),
{upstream} (root URL of the fake provider, e.g. http://127.0.0.1:9000).

Variants (limits, detection, PII, audit) add an aifw target with another policy file, either
in their own bench module (`run.main(argv, targets=default_targets() + [aifw_target(...)])`)
or on the command line (`python -m bench.run --policy aifw-pii=policies/pii.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DIRECT = "direct"
PASSTHROUGH = "passthrough"
AIFW = "aifw"


@dataclass(frozen=True)
class Target:
    name: str
    command: tuple[str, ...] | None  # None: the load goes straight to the fake provider
    env: dict[str, str] = field(default_factory=dict)


def aifw_target(name: str, policy: str, env: dict[str, str] | None = None) -> Target:
    # each target its own audit directory: two targets on one chain would refuse each other
    return Target(name, ("{python}", "-m", "proxy", "serve", "--policy", policy, "--port", "{port}"),
                  {"AIFW_UPSTREAM_URL": "{upstream}/v1", "AIFW_AUDIT_DIR": f"bench/results/audit/{name}",
                   **(env or {})})


def default_targets() -> list[Target]:
    return [
        Target(DIRECT, None),
        Target(PASSTHROUGH, ("{python}", "-m", "bench.passthrough", "--port", "{port}",
                             "--upstream", "{upstream}")),
        aifw_target(AIFW, "policies/default.yaml"),
    ]


# `make bench` (issue 14): aifw with no scanning guard, with the default policy (on uvloop when
# it is installed, and on asyncio's loop for comparison) and with every guard on.
NOSCAN, DEFAULT, DEFAULT_ASYNCIO, ALL_GUARDS = "aifw-noscan", "aifw-default", "aifw-default-asyncio", "aifw-all"


def bench_targets() -> list[Target]:
    audit = lambda name: {"AIFW_AUDIT_DIR": "bench/results/var-" + name}  # noqa: E731
    return [
        Target(DIRECT, None),
        Target(PASSTHROUGH, ("{python}", "-m", "bench.passthrough", "--port", "{port}",
                             "--upstream", "{upstream}")),
        aifw_target(NOSCAN, "bench/policies/noscan.yaml", audit(NOSCAN)),
        aifw_target(DEFAULT, "policies/default.yaml", audit(DEFAULT)),
        aifw_target(DEFAULT_ASYNCIO, "policies/default.yaml",
                    {**audit(DEFAULT_ASYNCIO), "AIFW_EVENT_LOOP": "asyncio"}),
        aifw_target(ALL_GUARDS, "bench/policies/all-guards.yaml", audit(ALL_GUARDS)),
    ]
# `aifw serve --workers 2` is measured by bench/workers.py (also in `make bench`): with this run's
# Python load generator and fake provider on the same two cores, a second worker has no core.


def before_targets(checkout: str) -> list[Target]:
    """The no-scan, default and every-guard targets running the aifw code in ``checkout`` (e.g.
    ``git archive <commit> | tar -x -C DIR``), named ``…@before``: before and after in one run."""
    launch = f"import sys; sys.path.insert(0, {checkout!r}); from proxy.cli import main; sys.exit(main())"
    out = []
    for name, policy in ((NOSCAN, "bench/policies/noscan.yaml"), (DEFAULT, "policies/default.yaml"),
                         (ALL_GUARDS, "bench/policies/all-guards.yaml")):
        before = f"{name}@before"
        out.append(Target(before, ("{python}", "-c", launch, "serve", "--policy", policy, "--port", "{port}"),
                          {"AIFW_UPSTREAM_URL": "{upstream}/v1", "AIFW_AUDIT_DIR": "bench/results/var-" + before}))
    return out
