"""Explain a judgement (proxy/offline.py) for people: every finding with its rules' descriptions,
where each rule matched, its points, the model's probability, each slot's score against the
threshold, the text as PII masking left it, and the verdict with the message the client reads.

Nothing here decides: the guards decided; this reads what they reported and what they scored
(``ex.trace``), and finds the matched spans only to show them.
"""
from __future__ import annotations

from typing import Any

from .detection.assess import slot_rule_ids
from .detection.matcher import locate
from .detection.normalize import Prepared
from .detection.response import locate as locate_in_answer
from .offline import Judgement
from .ruleinfo import describe
from .verdict import Finding, block_message

CONTEXT_CHARS = 40       # shown on each side of a matched span


def _snippet(view: str, text: str, start: int, end: int) -> dict:
    return {"view": view, "before": text[max(0, start - CONTEXT_CHARS):start],
            "match": text[start:end], "after": text[end:end + CONTEXT_CHARS],
            "start": start, "end": end}


def _rule_detail(rule: Any, prepared: Prepared) -> dict:
    out: dict[str, Any] = {"id": rule.id, "description": describe(rule.id, {rule.id: rule.message}),
                           "points": rule.score}
    if rule.context is not None:
        out["context"] = f"judged against the request's system prompt ({rule.context})"
    elif rule.signal is not None:
        out["signal"] = {"name": rule.signal, "count": getattr(prepared, rule.signal), "min": rule.min_count}
    else:
        found = locate(rule, prepared)
        if found is not None:
            out["match"] = _snippet(*found)
    return out


def injection_slots(j: Judgement) -> dict | None:
    """Each slot the injection guard scored: its score against the threshold, rule by rule."""
    trace = j.ex.trace
    if trace is None or trace.injection is None:
        return None
    cfg = trace.injection.detector
    rules = {r.id: r for r in (*cfg.rules, *cfg.context_rules)}
    for by_role in trace.injection.rules_by_role.values():
        rules.update((r.id, r) for r in by_role)
    slots = []
    for role, text, slot in trace.slot_scores:
        prepared = Prepared(text)
        # the text as the guard saw it: as sent, or as a guard before it rewrote it (PII masking)
        index = next((s.index for s, orig in zip(j.ex.request_slots, j.original)
                      if s.role == role and text in (orig, s.text)), None)
        details = [_rule_detail(rules[rid], prepared) if rid in rules else
                   {"id": rid, "description": describe(rid)} for rid in slot_rule_ids(slot)]
        for d in details:
            if d["id"] == "ML-9001":
                d["points"] = slot.model_points
        slots.append({
            "role": role, "index": index, "chars": len(text),
            "score": round(slot.score, 2), "threshold": cfg.threshold,
            "attack": slot.score >= cfg.threshold, "rule_points": round(slot.rule_score, 2),
            "model_probability": None if slot.model_probability is None else round(slot.model_probability, 3),
            "model_points": slot.model_points,
            "model_operating_point": None if cfg.model is None else round(cfg.model.threshold, 3),
            "timed_out": slot.timed_out, "rules": details})
    return {"threshold": cfg.threshold, "slots": slots}


def _answer_match(j: Judgement, rule_id: str) -> dict | None:
    """Where the answer hit an injection answer check (canary, exfiltration markup)."""
    guard = next((g for g in j.ex.scope.guards if g.name == "injection"), None) if j.ex.scope else None
    for slot in j.ex.response_slots if guard is not None else ():
        found = locate_in_answer(slot.text, guard.settings.response, rule_id)
        if found is not None:
            return _snippet(*found)
    return None


def _finding(j: Judgement, f: Finding) -> dict:
    rules = []
    for r in f.rule_ids:
        rule = {"id": r, "description": describe(r)}
        if f.guard == "injection" and f.direction == "response":
            found = _answer_match(j, r)
            if found is not None:
                rule["match"] = found
        rules.append(rule)
    return {"guard": f.guard, "action": f.action, "direction": f.direction, "score": f.score,
            "rules": rules, "counts": {str(k): v for k, v in f.counts.items()}}


def _masked(j: Judgement) -> dict:
    ex = j.ex
    request = [{"role": s.role, "kind": s.kind, "index": s.index, "text": s.text}
               for s, orig in zip(ex.request_slots, j.original) if s.text != orig]
    answer = [{"role": s.role, "kind": s.kind, "index": s.index, "text": s.text}
              for s in ex.response_slots if s.changed]
    return {"request": request, "answer": answer}


def _verdict(j: Judgement) -> dict:
    ex = j.ex
    if j.refused is not None:
        exc = j.refused
        return {"decision": "refused", "status": exc.status, "code": exc.code, "guard": None,
                "rules": [], "direction": "request", "message": exc.message, "finish_reason": None}
    v = j.verdict
    if v is None:
        return {"decision": ex.decision, "status": 200, "code": None, "guard": None, "rules": [],
                "direction": None, "message": None, "finish_reason": None}
    in_answer = ex.finish_reason is not None and v.status == 200
    return {"decision": ex.decision, "status": v.status, "code": v.code, "guard": v.guard,
            "rules": list(dict.fromkeys(v.rule_ids)),
            "direction": "request" if j.request_verdict is not None else "response",
            # a refusal inside the answer (200, finish_reason) carries no error message
            "message": None if in_answer else block_message(v),
            "finish_reason": ex.finish_reason if in_answer else None}


def explain(j: Judgement) -> dict:
    ex = j.ex
    policy = ex.policy
    return {
        "policy": {"name": policy.name, "digest": policy.digest, "path": policy.path},
        "scope": getattr(ex.scope, "name", None), "endpoint": ex.endpoint.name, "model": ex.model,
        "request": [{"role": s.role, "kind": s.kind, "index": s.index, "chars": len(orig)}
                    for s, orig in zip(ex.request_slots, j.original)],
        "answer_judged": j.answer_judged,
        "findings": [_finding(j, f) for f in ex.findings],
        "injection": injection_slots(j),
        "masked": _masked(j),
        "uninspected": list(ex.uninspected),
        "verdict": _verdict(j),
    }


# --- text -------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def _match_text(m: dict) -> str:
    return f"{m['view']}: \"...{_quote(m['before'])}[{_quote(m['match'])}]{_quote(m['after'])}...\""


def _slot_lines(slot: dict) -> list[str]:
    where = f"{slot['role']}[{slot['index']}]" if slot["index"] is not None else slot["role"]
    model = "; model not run: it could not change the verdict" if slot["model_operating_point"] else ""
    if slot["model_probability"] is not None:
        model = (f" + model {slot['model_points']} (probability {slot['model_probability']}, "
                 f"operating point {slot['model_operating_point']})")
    verdict = "attack" if slot["attack"] else "below threshold"
    lines = [f"  {where}: score {slot['score']} / threshold {slot['threshold']} -> {verdict}"
             f"  (rules {slot['rule_points']}{model})"]
    width = max((len(r["id"]) for r in slot["rules"]), default=0)
    for r in slot["rules"]:
        lines.append(f"    {r['id']:{width}}  +{r.get('points', '?')}  {r['description']}")
        pad = " " * (width + 4)
        if "match" in r:
            lines.append(f"    {pad}{_match_text(r['match'])}")
        elif "signal" in r:
            s = r["signal"]
            lines.append(f"    {pad}signal {s['name']}: {s['count']} (fires at {s['min']})")
        elif "context" in r:
            lines.append(f"    {pad}{r['context']}")
    return lines


def render(report: dict) -> str:
    p = report["policy"]
    lines = [f"policy: {p['name']} ({p['digest'][:19]}), scope {report['scope']}",
             f"request: {report['endpoint']}, model {report['model'] or '(none)'}, "
             f"{len(report['request'])} text slot(s)" +
             (f": {', '.join(s['role'] for s in report['request'])}" if report["request"] else ""),
             ""]
    if not report["findings"] and not report["injection"]:
        lines.append("no findings")
    for f in report["findings"]:
        rules = ", ".join(r["id"] for r in f["rules"]) or "-"
        counts = "  " + ", ".join(f"{k} x{v}" for k, v in f["counts"].items()
                                  if isinstance(v, int)) if f["guard"] == "pii" and f["counts"] else ""
        lines.append(f"{f['guard']}: {f['action']} ({f['direction']}) {rules}{counts}")
        if f["guard"] == "injection" and report["injection"] and f["direction"] == "request":
            for slot in report["injection"]["slots"]:
                lines += _slot_lines(slot)
        elif f["guard"] != "injection":
            width = max(len(r["id"]) for r in f["rules"]) if f["rules"] else 0
            lines += [f"    {r['id']:{width}}  {r['description']}" for r in f["rules"]]
        elif f["direction"] == "response":
            for r in f["rules"]:
                lines.append(f"    {r['id']}  {r['description']}")
                if "match" in r:
                    lines.append(f"    {' ' * len(r['id'])}  {_match_text(r['match'])}")
    if report["injection"] and not any(f["guard"] == "injection" and f["direction"] == "request"
                                       for f in report["findings"]):
        lines.append("injection: nothing found (request)")
        for slot in report["injection"]["slots"]:
            lines += _slot_lines(slot)
    masked = report["masked"]
    for side, slots in (("request as forwarded", masked["request"]), ("answer as delivered", masked["answer"])):
        for s in slots:
            lines.append(f"{side}, {s['role']}[{s['index']}]: \"{_quote(s['text'])}\"")
    for reason in report["uninspected"]:
        lines.append(f"not inspected: {reason}")
    v = report["verdict"]
    lines.append("")
    if v["decision"] == "refused":
        lines.append(f"verdict: REFUSED {v['status']} {v['code']} before any guard ran")
        lines.append(f"  message: {v['message']}")
    elif v.get("finish_reason"):
        lines.append(f"verdict: BLOCKED by {v['guard']} ({v['direction']}): the answer becomes a refusal, "
                     f"200 with finish_reason {v['finish_reason']} (rules: {', '.join(v['rules'])})")
    elif v["message"] is not None:
        lines.append(f"verdict: BLOCKED {v['status']} {v['code']} by {v['guard']} ({v['direction']})")
        lines.append(f"  message: {v['message']}")
    else:
        judged = "" if report["answer_judged"] else " (no answer judged)"
        lines.append(f"verdict: {v['decision'].upper()}{judged}")
    return "\n".join(lines) + "\n"
