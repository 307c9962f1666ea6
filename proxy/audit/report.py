"""``aifw audit report --html``: one self-contained page with inline SVG charts.

No external resource: the page renders the same offline, in any browser. Its one inline script
(the exchange filters, proxy/audit/report_explore.py) is admitted by its hash; the
Content-Security-Policy forbids every other script and any network access, so a log value can
never make the page run code or call out. Every value from the log is HTML-escaped.
"""
from __future__ import annotations

import html
import time
from collections import Counter
from typing import Any, Callable, Iterable

from . import report_explore
from .query import (Stats, blocking_rules, finding_details, is_refusal, record_caller, to_epoch,
                    would_block_rules)

BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
COLORS = {"ok": "#3b82f6", "blocked": "#dc2626", "prompt": "#0d9488", "completion": "#f59e0b",
          "bar": "#6366f1"}
BLOCKED = ("blocked",)


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _bucket_size(first: float, last: float, max_buckets: int = 60) -> int:
    span = max(last - first, 1)
    for size in BUCKETS:
        if span / size <= max_buckets:
            return size
    return BUCKETS[-1]


def _label(epoch: float, size: int) -> str:
    fmt = "%Y-%m-%d" if size >= 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.gmtime(epoch))


def _timeline(records: list[dict]) -> tuple[int, float, list[dict]]:
    times = [to_epoch(r["time"]) for r in records if r.get("time")]
    if not times:
        return 60, 0.0, []
    first, last = min(times), max(times)
    size = _bucket_size(first, last)
    start = first - first % size
    n = int((last - start) // size) + 1
    buckets = [Counter() for _ in range(n)]
    for rec, t in zip((r for r in records if r.get("time")), times):
        b = buckets[int((t - start) // size)]
        b["blocked" if rec.get("decision") in BLOCKED else "ok"] += 1
        tok = rec.get("tokens") or {}
        b["prompt"] += int(tok.get("prompt") or 0)
        b["completion"] += int(tok.get("completion") or 0)
    return size, start, buckets


def _stacked_bars(title: str, buckets: list[Counter], keys: tuple[str, str], names: tuple[str, str],
                  size: int, start: float) -> str:
    width, height, left, bottom, top = 920, 240, 56, 40, 16
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b[keys[0]] + b[keys[1]] for b in buckets), default=0) or 1
    n = max(len(buckets), 1)
    bw = plot_w / n
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(peak * frac)}</text>')
    for i, b in enumerate(buckets):
        x = left + i * bw
        y = top + plot_h
        tip = _e(f"{_label(start + i * size, size)}: {names[0]} {b[keys[0]]}, {names[1]} {b[keys[1]]}")
        for key in keys:
            h = plot_h * b[key] / peak
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
                             f'height="{h:.1f}" fill="{COLORS[key]}"><title>{tip}</title></rect>')
    step = max(1, n // 6)
    for i in range(0, n, step):
        parts.append(f'<text x="{min(left + i * bw + bw / 2, width - 44):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{_e(_label(start + i * size, size))}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span class="key"><i style="background:{COLORS[k]}"></i>{_e(nm)}</span>'
                     for k, nm in zip(keys, names))
    return f'<section><h2>{_e(title)}</h2><div class="legend">{legend}</div>{"".join(parts)}</section>'


def _hbars(title: str, items: list[tuple[str, int]], unit: str, empty: str) -> str:
    if not items:
        return f"<section><h2>{_e(title)}</h2><p class=\"empty\">{_e(empty)}</p></section>"
    width, row, left = 920, 24, 260
    height = row * len(items) + 8
    peak = max(v for _, v in items) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{_e(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, value) in enumerate(items):
        y = 4 + i * row
        w = (width - left - 90) * value / peak
        label = name if len(name) <= 36 else name[:35] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{_e(label)}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" '
                     f'fill="{COLORS["bar"]}"><title>{_e(name)}: {value} {_e(unit)}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{y + 16}">{value:,}</text>')
    parts.append("</svg>")
    return f'<section><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def _table(title: str, header: tuple[str, ...], rows: Iterable[tuple], *, wrap: bool = False,
           empty: str | None = None) -> str:
    """``wrap``: long values (digests) may break anywhere; ``empty``: said instead of no rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not body and empty is not None:
        return f"<section><h2>{_e(title)}</h2><p class=\"empty\">{_e(empty)}</p></section>"
    cls = ' class="wrap"' if wrap else ""
    return (f"<section><h2>{_e(title)}</h2><table{cls}><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></section>")


CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:960px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.sub{color:#6b7280;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:130px}
.card b{display:block;font-size:20px}.card span{color:#6b7280;font-size:12px}
svg.chart{max-width:100%;height:auto}svg text{font-size:11px;fill:#374151}svg .grid{stroke:#e5e7eb}
.legend{font-size:12px;color:#374151;margin-bottom:4px}.key{margin-right:14px}.key i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb;font-size:13px}
table.wrap td{overflow-wrap:anywhere}
.empty{color:#6b7280}
.chain{border-radius:8px;padding:10px 14px;margin:12px 0}.chain.ok{background:#ecfdf5;border:1px solid #10b981}
.chain.bad{background:#fef2f2;border:1px solid #dc2626}.chain.warn{background:#fffbeb;border:1px solid #f59e0b}
.filters{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:6px}.filters select{max-width:220px}
code{font-size:12px}
"""


RECENT = 20


def _described(rules: list[str], describe: Callable[[str], str]) -> str:
    return "; ".join(f"{r}: {describe(r)}" for r in rules) or "-"


def _chain(verdict: Any, keys: list) -> str:
    """Whether the chain verified, under which key(s): a proxy.audit.verify.VerifyResult."""
    if verdict is None:
        return ""
    word = {"ok": "verified", "tampered": "TAMPERED", "unclosed": "UNCLOSED"}[verdict.status]
    if verdict.status == "ok" and not keys and verdict.checkpoints:
        cls = "warn"
    else:
        cls = "ok" if verdict.status == "ok" else "bad"
    if keys:
        under = ("checkpoint signatures verified under " + ", ".join(f"{k.alg} key {k.kid}" for k in keys)
                 + f" ({verdict.signatures_ok} of {verdict.checkpoints} signatures)")
    else:
        under = "signatures not checked: no key given (--key or AIFW_AUDIT_SIGNING_KEY)"
    lines = [f"<b>Audit chain {_e(word)}</b>: {len(verdict.chains)} chain(s), {verdict.files} file(s), "
             f"{verdict.records} records, {verdict.checkpoints} checkpoints; {_e(under)}."]
    lines += [f"<br>{_e(w)}" for w in verdict.warnings]
    lines += [f"<br>{_e(p)}" for p in verdict.problems[:10]]
    if len(verdict.problems) > 10:
        lines.append(f"<br>... and {len(verdict.problems) - 10} more problem(s): run aifw audit verify")
    return f'<div class="chain {cls}" id="chain">{"".join(lines)}</div>'


def _recent(title: str, records: list[dict], pick: Callable[[dict], bool], header: tuple[str, ...],
            row: Callable[[dict], tuple], empty: str) -> str:
    chosen = [r for r in records if pick(r)]
    shown = chosen[-RECENT:][::-1]
    more = (f" (newest {len(shown)} of {len(chosen)})" if len(chosen) > len(shown)
            else f" ({len(chosen)})" if chosen else "")
    return _table(title + more, header, (row(r) for r in shown), empty=empty)


def _rules_table(stats: Stats, describe: Callable[[str], str]) -> str:
    ids = list(dict.fromkeys([*stats.security_rules, *stats.refusal_rules, *stats.monitored_rules,
                              *stats.findings]))
    if not ids:
        return "<section><h2>Rules</h2><p class=\"empty\">No rule fired.</p></section>"
    ids.sort(key=lambda r: (-stats.security_rules[r], -stats.refusal_rules[r], -stats.monitored_rules[r],
                            -stats.findings[r], r))
    return _table("Rules", ("rule", "description", "blocked", "refused (limits)", "would block",
                            "in findings"),
                  ((r, describe(r), stats.security_rules[r], stats.refusal_rules[r],
                    stats.monitored_rules[r], stats.findings[r]) for r in ids))


def render_html(records: list[dict], stats: Stats, sources: list[str], *, verdict: Any = None,
                keys: list | None = None, describe: Callable[[str], str] = str) -> str:
    """The page. ``verdict``: the chain's VerifyResult under ``keys``; ``describe``: rule id ->
    one line."""
    size, start, buckets = _timeline(records)
    spend = f"{stats.spend:,.2f}" + (f" (+{stats.unpriced} unpriced)" if stats.unpriced else "")
    cards = [("requests", f"{stats.total:,}"), ("security blocks", f"{stats.security_blocks:,}"),
             ("rate-limit and quota refusals", f"{stats.refusals:,}"),
             ("monitored (would block)", f"{stats.decisions['monitored']:,}"),
             ("bypassed", f"{stats.decisions['bypassed']:,}"),
             ("not fully inspected", f"{stats.uninspected:,}"),
             ("callers", f"{len(stats.callers):,}"), ("models", f"{len(stats.models):,}"),
             ("prompt tokens", f"{stats.prompt_tokens:,}"),
             ("completion tokens", f"{stats.completion_tokens:,}"),
             ("spend (USD)", spend)]
    card_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
    details = [(r.get("time"), r.get("id"), *d) for r in records for d in finding_details(r)][-RECENT:]
    period = f"{stats.first or '-'} to {stats.last or '-'}"
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
           f"script-src {report_explore.script_hash()}")
    who = lambda r: (r.get("time"), r.get("id"), record_caller(r), r.get("model"))
    security = lambda r: r.get("decision") in BLOCKED and not is_refusal(r)
    refused = lambda r: r.get("decision") in BLOCKED and is_refusal(r)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>aifw audit report</title><style>{CSS}</style></head><body>",
        "<h1>aifw audit report</h1>",
        f'<p class="sub">{_e(period)} (UTC) · {_e(len(sources))} source(s) · generated '
        f'{_e(time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()))}</p>',
        _chain(verdict, keys or []),
        f'<div class="cards">{card_html}</div>',
        _table("Policies in force", ("policy", "digest", "first", "last", "requests"),
               ((p.name, p.digest, p.first, p.last, p.records)
                for p in sorted(stats.policies.values(), key=lambda p: p.first)), wrap=True),
        _stacked_bars("Traffic and blocks over time", buckets, ("ok", "blocked"),
                      ("passed", "blocked"), size, start),
        _hbars("Top blocking rules", stats.security_rules.most_common(10), "blocks",
               "No request was blocked by a security guard."),
        _rules_table(stats, describe),
        _hbars("Top callers by requests", stats.callers.most_common(10), "requests", "No records."),
        _stacked_bars("Token use over time", buckets, ("prompt", "completion"),
                      ("prompt tokens", "completion tokens"), size, start),
        _hbars("Tokens by caller", stats.tokens_by_caller.most_common(10), "tokens", "No token use."),
        _hbars("Tokens by model", stats.tokens_by_model.most_common(10), "tokens", "No token use."),
        *(_table(f"Spend by {name}", (name, "USD"), ((k, f"{v:,.4f}") for k, v in counter.most_common(20)))
          for name, counter in stats.spend_counters() if counter),
        _table("Decisions", ("decision", "requests"), stats.decisions.most_common()),
        _recent("Security blocks", records, security, ("time", "request", "caller", "model", "rules"),
                lambda r: (*who(r), _described(blocking_rules(r), describe)),
                "No request was blocked by a security guard."),
        _recent("Rate-limit and quota refusals", records, refused,
                ("time", "request", "caller", "model", "limit"),
                lambda r: (*who(r), _described(blocking_rules(r), describe)), "No refusals."),
        _recent("Monitored: would have been blocked", records, lambda r: bool(would_block_rules(r)),
                ("time", "request", "caller", "model", "rules"),
                lambda r: (*who(r), _described(would_block_rules(r), describe)),
                "No monitor-mode guard would have blocked anything."),
        _recent("Bypassed and not fully inspected", records,
                lambda r: r.get("decision") == "bypassed" or bool(r.get("uninspected")),
                ("time", "request", "caller", "model", "decision", "not inspected"),
                lambda r: (*who(r), r.get("decision"), "; ".join(r.get("uninspected") or ()) or "-"),
                "Every exchange was fully inspected."),
        _table("Recent tool and hook decisions", ("time", "request", "rules", "action", "detail"),
               reversed(details), empty="No decision about a tool or a hook."),
        report_explore.section(records, describe),
        "</body></html>",
    ]
    return "".join(parts)
