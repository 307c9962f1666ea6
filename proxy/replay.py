"""``aifw replay``: re-judge past exchanges from the audit log under another policy.

Each record that kept its text (``audit.level: full`` or ``redacted``) is judged again by the new
policy (proxy/offline.py: the proxy's own parsing, scope selection, guards and pipeline) and
compared with what the record says happened. Differences are grouped by rule id: this is how a
team sees what moving a rule from monitor to enforce, or changing a threshold, would have done
to real traffic before it ships.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from .ruleinfo import describe

# The judging machinery (guards, pipeline: ~0.3 s to import) is loaded by the command that runs,
# not by every `aifw` invocation that builds the parser.

# Actions of a finding that decide an exchange (or would, in monitor mode). Masking is left out
# of the comparison: a record keeps the request as forwarded (already masked) and the answer as
# the client got it (restored), so masking cannot be judged again from it.
DECIDING = frozenset({"blocked", "would_block", "cut"})
# Refusals of the edge itself (no route for the model), which a new policy's routes can change.
EDGE_REFUSALS = frozenset({"model_not_allowed"})
KINDS = (("allow_to_block", "allow -> block"), ("block_to_allow", "block -> allow"),
         ("findings", "findings changed, same decision"))
EXAMPLES = 5


@dataclass
class Side:
    blocked: bool
    rules: tuple[str, ...]          # rules that blocked (or would have), in order
    decision: str


@dataclass
class Change:
    kind: str                       # one of KINDS
    record: dict
    old: Side
    new: Side

    def grouped_rules(self) -> list[str]:
        if self.kind == "allow_to_block":
            return list(self.new.rules) or ["(no rule id)"]
        if self.kind == "block_to_allow":
            return list(self.old.rules) or ["(no rule id)"]
        old, new = set(self.old.rules), set(self.new.rules)
        return [f"+{r}" for r in self.new.rules if r not in old] + \
               [f"-{r}" for r in self.old.rules if r not in new]


@dataclass
class Summary:
    policy: dict
    records: int = 0
    replayed: int = 0
    unchanged: int = 0
    not_replayable: Counter = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)

    def by_rule(self, kind: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for change in self.changes:
            if change.kind == kind:
                for rule in change.grouped_rules():
                    out.setdefault(rule, []).append(change.record.get("id") or "?")
        return dict(sorted(out.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _left_out(policy) -> set[str]:
    """Guards of the new policy that replay does not run (they count traffic or read bodies)."""
    return {g.name for scope in (policy.base, *policy.scopes) for g in scope.guards
            if g.counts_traffic or g.reads_body}


def _deciding_rules(findings: Iterable, left_out: set[str]) -> tuple[str, ...]:
    rules: list[str] = []
    for f in findings:
        guard, action, ids = (f.get("guard"), f.get("action"), f.get("rules") or ()) \
            if isinstance(f, dict) else (f.guard, f.action, f.rule_ids)
        if action in DECIDING and guard not in left_out:
            rules.extend(ids)
    return tuple(dict.fromkeys(rules))


def not_replayable(rec: dict, left_out: set[str]) -> str | None:
    """Why a record cannot be judged again, or None."""
    from .offline import ENDPOINT_PATHS
    content = rec.get("content")
    if not isinstance(content, dict):
        return "no text (audit.level: metadata)"
    if rec.get("endpoint") not in ENDPOINT_PATHS:
        return f"endpoint not inspected ({rec.get('endpoint')})"
    if not content.get("request") and not content.get("response"):
        return "no text (body not inspected)"
    verdict = rec.get("verdict") or {}
    if verdict.get("guard") in left_out:
        return f"decided by the {verdict['guard']} guard, which replay does not run"
    return None


def old_side(rec: dict, left_out: set[str]) -> Side:
    verdict = rec.get("verdict")
    blocked = bool(verdict) or rec.get("error") in EDGE_REFUSALS
    rules = tuple((verdict or {}).get("rules") or ()) if verdict else ()
    if rec.get("error") in EDGE_REFUSALS and not verdict:
        rules = (f"edge.{rec['error']}",)
    rules = tuple(dict.fromkeys(rules + _deciding_rules(rec.get("findings") or (), left_out)))
    return Side(blocked, rules, str(rec.get("decision")))


async def replay_record(policy, rec: dict, left_out: set[str]) -> Side:
    from .exchange import Identity
    from .offline import endpoint_named, judge, new_exchange
    from .textslots import TextSlot
    content = rec["content"]
    slots = [TextSlot(str(s.get("role")), str(s.get("kind")), str(s.get("text") or ""),
                      index=int(s.get("index") or 0)) for s in content.get("request") or ()]
    answer = [TextSlot("assistant", "output", str(s.get("text") or ""), index=int(s.get("index") or 0))
              for s in content.get("response") or ()]
    identity = Identity(key_id=rec.get("key") or "", user=rec.get("user"),
                        groups=tuple(rec.get("groups") or ()), key_name=rec.get("key_name"))
    ex = new_exchange(policy, endpoint_named(rec["endpoint"]), identity, rec.get("id"))
    j = await judge(ex, slots=slots, model=rec.get("model"), answer=answer or None,
                    leave_out=("counts_traffic", "reads_body"))
    if j.refused is not None:
        return Side(True, (f"edge.{j.refused.code}",), "error")
    verdict = j.verdict
    rules = tuple(dict.fromkeys((verdict.rule_ids if verdict else ()) + _deciding_rules(ex.findings, left_out)))
    return Side(verdict is not None, rules, ex.decision)


def compare(old: Side, new: Side) -> str | None:
    if old.blocked != new.blocked:
        return "block_to_allow" if old.blocked else "allow_to_block"
    if set(old.rules) != set(new.rules):
        return "findings"
    return None


async def replay(policy, records: Iterable[dict], services=None) -> Summary:
    """Judge ``records`` under ``policy``; ``services`` (the policy's backends) are closed with
    the policy at the end when given."""
    from .offline import finish
    try:
        return await _replay(policy, records)
    finally:
        if services is not None:
            await finish(policy, services)


async def _replay(policy, records: Iterable[dict]) -> Summary:
    summary = Summary({"name": policy.name, "digest": policy.digest, "path": policy.path})
    left_out = _left_out(policy)
    for rec in records:
        summary.records += 1
        reason = not_replayable(rec, left_out)
        if reason is not None:
            summary.not_replayable[reason] += 1
            continue
        summary.replayed += 1
        old, new = old_side(rec, left_out), await replay_record(policy, rec, left_out)
        kind = compare(old, new)
        if kind is None:
            summary.unchanged += 1
        else:
            summary.changes.append(Change(kind, rec, old, new))
    return summary


# --- output ---------------------------------------------------------------------------------------
def as_dict(s: Summary, examples: int = EXAMPLES) -> dict:
    return {
        "policy": s.policy, "records": s.records, "replayed": s.replayed, "unchanged": s.unchanged,
        "not_replayable": dict(s.not_replayable.most_common()),
        "changes": {kind: {"count": sum(c.kind == kind for c in s.changes),
                           "rules": {rule: {"count": len(ids), "description": describe(rule.lstrip("+-")),
                                            "examples": ids[:examples]}
                                     for rule, ids in s.by_rule(kind).items()}}
                    for kind, _ in KINDS},
        "exchanges": [{"id": c.record.get("id"), "time": c.record.get("time"), "change": c.kind,
                       "policy": (c.record.get("policy") or {}).get("digest"),
                       "old": {"decision": c.old.decision, "blocked": c.old.blocked, "rules": list(c.old.rules)},
                       "new": {"decision": c.new.decision, "blocked": c.new.blocked, "rules": list(c.new.rules)}}
                      for c in s.changes],
    }


def render(s: Summary, examples: int = EXAMPLES) -> str:
    lines = [f"policy: {s.policy['path']} ({s.policy['name']} {s.policy['digest'][:19]})",
             f"records: {s.records}, replayed: {s.replayed}, not replayable: {sum(s.not_replayable.values())}"]
    lines += [f"  {n} {reason}" for reason, n in s.not_replayable.most_common()]
    lines.append(f"decided differently: {sum(c.kind != 'findings' for c in s.changes)}")
    for kind, title in KINDS:
        lines.append(f"  {title}: {sum(c.kind == kind for c in s.changes)}")
    lines.append(f"unchanged: {s.unchanged}")
    for kind, title in KINDS:
        groups = s.by_rule(kind)
        if not groups:
            continue
        lines += ["", f"{title}, by rule ({'the old policy' if kind == 'block_to_allow' else 'the new policy'}"
                  f"{'; +added -removed' if kind == 'findings' else ''}):"]
        width = max(len(r) for r in groups)
        for rule, ids in groups.items():
            more = f" (+{len(ids) - examples})" if len(ids) > examples else ""
            lines.append(f"  {rule:{width}}  {len(ids):>4}  {describe(rule.lstrip('+-'))}")
            lines.append(f"  {'':{width}}        e.g. {', '.join(ids[:examples])}{more}")
    return "\n".join(lines) + "\n"


def cmd_replay(args: argparse.Namespace) -> int:
    from .audit.query import Filter, parse_when
    from .audit.reader import iter_records
    from .offline import load_policy, prepared_or_reported
    from .services import Services
    services = Services()

    def prepare():
        flt = Filter(since=parse_when(args.since) if args.since else None,
                     until=parse_when(args.until) if args.until else None)
        policy = load_policy(args.policy, services)
        return policy, sorted((r for r in iter_records(args.paths) if flt(r)), key=lambda r: r.get("time") or "")
    prepared = prepared_or_reported(prepare)
    if prepared is None:
        return 2
    policy, records = prepared
    summary = asyncio.run(replay(policy, records, services))
    if args.json:
        sys.stdout.write(orjson.dumps(as_dict(summary, args.examples), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(summary, args.examples))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay", help="re-judge audit records under another policy; show what it decides differently",
        description="Judges every audit record that kept its text (audit.level: full or redacted) "
                    "again under --policy, as the proxy would, and lists the exchanges it decides "
                    "differently (allow -> block, block -> allow, other rules), grouped by rule id. "
                    "Records without text are counted as not replayable. Rate limits and the tools "
                    "guard are not replayed (they depend on traffic and on bodies a record does not "
                    "keep). Calls no upstream; provider keys need not be set.")
    p.add_argument("--policy", required=True, help="the policy to judge the records with")
    p.add_argument("paths", nargs="+", metavar="AUDIT_DIR", help="audit directories or files")
    p.add_argument("--since", help="UTC time (2025-01-31, 2025-01-31T12:00) or age (2h, 7d)")
    p.add_argument("--until", help="UTC time or age, exclusive")
    p.add_argument("--examples", type=int, default=EXAMPLES, help=f"record ids shown per rule (default {EXAMPLES})")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_replay)
