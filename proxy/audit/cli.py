"""``aifw audit ...``: verify, search, stats, report, keygen. Wire with ``register(subparsers)``."""
from __future__ import annotations

import argparse
import os
import sys

import orjson

from .config import DEFAULT_KEY_ENV
from .query import Filter, compute_stats, finding_details, parse_when, record_caller, select
from .reader import iter_records


def _safe(command):
    """A bad argument or an unreadable file is a one-line error (exit 2), not a traceback."""
    def run(args) -> int:
        try:
            return command(args)
        except (ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    run.__name__ = command.__name__
    return run


def register(subparsers) -> argparse.ArgumentParser:
    audit = subparsers.add_parser("audit", help="verify and review the audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    v = sub.add_parser("verify", help="check the hash chains and checkpoint signatures",
                       description="Exit status: 0 intact; 1 tampered or invalid; 2 the command "
                                   "failed (arguments, key, unreadable file); 3 intact but a "
                                   "chain ends without its close checkpoint and no writer is "
                                   "running (unclean end not yet resumed, or tail removed).")
    v.add_argument("paths", nargs="+", metavar="PATH", help="audit files or directories")
    v.add_argument("--key", action="append", default=[],
                   help="verification key (hmac:..., ed25519-pub:..., ed25519:...); repeat for "
                        "keys used over the log's life (rotation): every checkpoint must verify "
                        f"under one of them; default: ${DEFAULT_KEY_ENV}")
    v.add_argument("--key-env", default=DEFAULT_KEY_ENV, help="variable holding the key")
    v.add_argument("--allow-partial", action="store_true",
                   help="accept a log whose oldest files were pruned")
    v.add_argument("--live", action="store_true",
                   help="accept a chain without a closing checkpoint (log still being written)")
    v.add_argument("--mixed", action="store_true",
                   help="skip lines that are not audit entries (collected stdout)")
    v.add_argument("--json", action="store_true", help="machine-readable result")
    v.set_defaults(func=_safe(cmd_verify))

    def filters(p):
        p.add_argument("paths", nargs="+", metavar="PATH", help="audit files or directories")
        p.add_argument("--since", help="UTC time (2025-01-31, 2025-01-31T12:00) or age (2h, 7d)")
        p.add_argument("--until", help="UTC time or age, exclusive")
        p.add_argument("--user")
        p.add_argument("--key", help="key fingerprint, virtual key id or key name")
        p.add_argument("--caller", help="a caller exactly as search and stats print it")
        p.add_argument("--decision", choices=["allowed", "blocked", "masked", "monitored",
                                              "bypassed", "error"])
        p.add_argument("--rule", help="a rule id in the findings or the verdict")
        p.add_argument("--model")
        p.add_argument("--json", action="store_true", help="JSON output")

    s = sub.add_parser("search", help="list matching records")
    filters(s)
    s.add_argument("--limit", type=int, default=0, help="show at most N records (the newest)")
    s.set_defaults(func=_safe(cmd_search))

    st = sub.add_parser("stats", help="totals by decision, rule, caller, user and model; tokens and dollars spent")
    filters(st)
    st.set_defaults(func=_safe(cmd_stats))

    r = sub.add_parser("report", help="one self-contained HTML page with charts")
    filters(r)
    r.add_argument("--html", required=True, metavar="OUT.html", help="where to write the page")
    r.add_argument("--verify-key", dest="key_for_chain", action="append", default=[],
                   metavar="KEY", help="verification key for the chain shown at the top (as for "
                                      f"verify --key; repeatable); default: ${DEFAULT_KEY_ENV}")
    r.add_argument("--key-env", default=DEFAULT_KEY_ENV, help="variable holding the key")
    r.set_defaults(func=_safe(cmd_report))

    k = sub.add_parser("keygen", help="print a new Ed25519 signing key, its public key and kid")
    k.set_defaults(func=_safe(cmd_keygen))
    return audit


def _filter(args) -> Filter:
    return Filter(since=parse_when(args.since) if args.since else None,
                  until=parse_when(args.until) if args.until else None,
                  user=args.user, key=args.key, caller=args.caller, decision=args.decision, rule=args.rule,
                  model=args.model)


def _out(text: str) -> None:
    sys.stdout.write(text)


_VERDICTS = {"ok": "OK", "tampered": "TAMPERED", "unclosed": "UNCLOSED"}


def _verification_keys(specs: list[str], env: str) -> list:
    """The --key values, else the key in ``$env``; a malformed one is a ValueError (exit 2)."""
    from .signing import parse_key
    specs = specs or ([os.environ[env]] if os.environ.get(env) else [])
    keys = []
    for spec in specs:
        try:
            keys.append(parse_key(spec))
        except ValueError as exc:
            raise ValueError(f"bad --key: {exc}") from None
    return keys


def cmd_verify(args) -> int:
    # signing and verify pull in cryptography (~40 ms): imported by the commands that use them,
    # not by every `aifw` invocation that builds the parser (`aifw policy check`, `aifw serve`)
    from .verify import verify
    keys = _verification_keys(args.key, args.key_env)
    res = verify(args.paths, keys, allow_partial=args.allow_partial, live=args.live,
                 mixed=args.mixed)
    if args.json:
        _out(orjson.dumps({"ok": res.ok, "status": res.status, "exit": res.exit_code,
                           "keys": [{"kid": k.kid, "alg": k.alg} for k in keys],
                           "files": res.files, "entries": res.entries,
                           "records": res.records, "checkpoints": res.checkpoints,
                           "signatures_ok": res.signatures_ok, "first_seq": res.first_seq,
                           "last_seq": res.last_seq, "warnings": res.warnings,
                           "chains": [vars(c) for c in res.chains],
                           "problems": [{"where": p.where, "seq": p.seq, "request_id": p.request_id,
                                         "message": p.message, "kind": p.kind}
                                        for p in res.problems]},
                          option=orjson.OPT_INDENT_2).decode() + "\n")
        return res.exit_code
    for k in keys:
        _out(f"key: {k.alg} kid {k.kid}\n")
    for w in res.warnings:
        _out(f"note: {w}\n")
    for p in res.problems:
        _out(f"{'FAIL' if p.kind == 'tampered' else 'UNCLOSED'} {p}\n")
    verdict = _VERDICTS[res.status]
    if res.problems:
        verdict += f" ({len(res.problems)} problem(s))"
    _out(f"{verdict}: {len(res.chains)} chain(s), {res.files} file(s), {res.entries} entries, "
         f"{res.records} records, {res.checkpoints} checkpoints, {res.signatures_ok} signatures "
         "verified\n")
    for c in res.chains if len(res.chains) > 1 else ():
        _out(f"  {c.label}: {_VERDICTS[c.status]}, {c.files} file(s), seq {c.first_seq}..{c.last_seq}, "
             f"{c.records} records, {c.signatures_ok}/{c.checkpoints} signatures verified\n")
    return res.exit_code


def _rules(rec: dict) -> str:
    verdict = rec.get("verdict") or {}
    rules = verdict.get("rules") or [r for f in rec.get("findings") or () for r in f.get("rules") or ()]
    return ",".join(dict.fromkeys(rules))


_CONTROL = dict.fromkeys(range(32), "?")


def _table(rows: list[list[str]], header: list[str]) -> str:
    # values come from the log: keep terminal control sequences out of the reviewer's terminal
    rows = [[str(c).translate(_CONTROL) for c in r] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]) + "\n"


def _selected(args) -> list[dict]:
    """Matching records of every chain in the paths, in time order (worker chains interleave)."""
    return sorted(select(iter_records(args.paths), _filter(args)), key=lambda r: r.get("time") or "")


def cmd_search(args) -> int:
    recs = _selected(args)
    if args.limit:
        recs = recs[-args.limit:]
    if args.json:
        for rec in recs:
            _out(orjson.dumps(rec).decode() + "\n")
        return 0
    rows = []
    for r in recs:
        tok = r.get("tokens") or {}
        # what the findings name (a tool and its argument path, a hook): of the --rule asked for
        details = "; ".join(f"{rules} {action} {detail}" for rules, action, detail
                            in finding_details(r, args.rule))
        rows.append([r.get("time", ""), r.get("id", ""), record_caller(r), r.get("model") or "-",
                     str(r.get("status")), r.get("decision", ""), _rules(r) or "-",
                     f"{tok.get('prompt') or 0}/{tok.get('completion') or 0}", details or "-"])
    _out(_table(rows, ["time", "request", "caller", "model", "status", "decision", "rules",
                       "tokens p/c", "detail"]))
    _out(f"{len(rows)} record(s)\n")
    return 0


def cmd_stats(args) -> int:
    stats = compute_stats(select(iter_records(args.paths), _filter(args)))
    if args.json:
        _out(orjson.dumps(stats.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _out(f"records: {stats.total}  ({stats.first or '-'} .. {stats.last or '-'})\n")
    _out(f"tokens: prompt {stats.prompt_tokens}, completion {stats.completion_tokens}, "
         f"total {stats.prompt_tokens + stats.completion_tokens}\n")
    _out(f"spend: ${stats.spend:.6f}" + (f" ({stats.unpriced} answered record(s) without a price)"
                                         if stats.unpriced else "") + "\n")
    _out(f"security blocks: {stats.security_blocks}  rate-limit and quota refusals: {stats.refusals}  "
         f"monitored (would block): {stats.decisions['monitored']}\n")
    _out(f"not fully inspected: {stats.uninspected}\n\n")
    rows = [[p.name or "-", p.digest or "-", p.first, p.last, str(p.records)]
            for p in sorted(stats.policies.values(), key=lambda p: p.first)]
    _out(_table(rows, ["policy", "digest", "first", "last", "requests"]) + "\n")
    for title, counter in (("decision", stats.decisions), ("blocking rule", stats.rules),
                           ("caller", stats.callers), ("user", stats.users), ("model", stats.models)):
        rows = [[k, str(v)] for k, v in counter.most_common()]
        _out(_table(rows, [title, "requests"]) + "\n")
    rows = [[k, str(v)] for k, v in stats.tokens_by_caller.most_common()]
    _out(_table(rows, ["caller", "tokens"]) + "\n")
    rows = [[k, str(v)] for k, v in stats.tokens_by_model.most_common()]
    _out(_table(rows, ["model", "tokens"]))
    for title, counter in stats.spend_counters():
        if counter:
            _out("\n" + _table([[k, f"{v:.6f}"] for k, v in counter.most_common()], [title, "USD"]))
    return 0


def cmd_report(args) -> int:
    from ..ruleinfo import describe
    from .report import render_html   # only this command needs it
    from .verify import verify

    keys = _verification_keys(args.key_for_chain, args.key_env)
    recs = _selected(args)
    page = render_html(recs, compute_stats(recs), args.paths, verdict=verify(args.paths, keys),
                       keys=keys, describe=describe)
    with open(args.html, "w", encoding="utf-8") as fh:
        fh.write(page)
    _out(f"wrote {args.html} ({len(recs)} records)\n")
    return 0


def cmd_keygen(args) -> int:
    from .signing import generate_ed25519, parse_key
    private, public = generate_ed25519()
    _out(f"{DEFAULT_KEY_ENV}={private}\n# public key for `aifw audit verify --key` "
         f"(kid {parse_key(public).kid}):\n{public}\n")
    return 0
