"""The report's exchange table and its client-side filters (caller, rule, model, decision).

Each row carries what the filters compare in ``data-`` attributes (HTML-escaped values, the
rule ids as a JSON list), and one inline script hides the rows that do not match. The script
reads nothing but the page: no fetch, no external resource, and the page's
Content-Security-Policy admits exactly this script by its hash (``script_hash``), nothing else.
"""
from __future__ import annotations

import base64
import hashlib
import html
from collections import Counter
from typing import Callable

import orjson

from .query import blocking_rules, record_caller, record_rules

MAX_ROWS = 2000      # the newest exchanges; a longer period is narrowed with --since/--until

FILTERS = (("caller", "caller"), ("rule", "rule"), ("model", "model"), ("decision", "decision"))

SCRIPT = """
(function () {
  var selects = document.querySelectorAll('select[data-filter]');
  var rows = document.querySelectorAll('#exchanges tbody tr');
  var shown = document.getElementById('shown');
  function apply() {
    var want = {};
    selects.forEach(function (s) { if (s.value !== '') { want[s.dataset.filter] = s.value; } });
    var n = 0;
    rows.forEach(function (row) {
      var ok = true;
      for (var key in want) {
        if (key === 'rule') {
          ok = ok && JSON.parse(row.dataset.rule).indexOf(want[key]) >= 0;
        } else {
          ok = ok && row.dataset[key] === want[key];
        }
      }
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = String(n);
  }
  selects.forEach(function (s) { s.addEventListener('change', apply); });
  document.getElementById('reset').addEventListener('click', function () {
    selects.forEach(function (s) { s.value = ''; });
    apply();
  });
  apply();
})();
"""


def script_hash() -> str:
    """The CSP source that admits SCRIPT, and only it."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode() + "'"


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _rules_cell(rules: list[str], describe: Callable[[str], str]) -> str:
    return ", ".join(f'<span title="{_e(describe(r))}">{_e(r)}</span>' for r in rules) or "-"


def _cost(rec: dict) -> str:
    cost = rec.get("cost")
    return "-" if cost is None else f"{cost:.6f}"


def section(records: list[dict], describe: Callable[[str], str]) -> str:
    """The filter controls and the table of the newest MAX_ROWS exchanges."""
    rows = records[-MAX_ROWS:][::-1]
    values: dict[str, Counter] = {name: Counter() for name, _ in FILTERS}
    body = []
    for rec in rows:
        caller = record_caller(rec)
        rules = list(dict.fromkeys(blocking_rules(rec) + record_rules(rec)))
        model = rec.get("model") or "(none)"
        decision = rec.get("decision") or "unknown"
        values["caller"][caller] += 1
        values["model"][model] += 1
        values["decision"][decision] += 1
        values["rule"].update(rules)
        body.append(
            f'<tr data-caller="{_e(caller)}" data-model="{_e(model)}" data-decision="{_e(decision)}" '
            f'data-rule="{_e(orjson.dumps(rules).decode())}">'
            f"<td>{_e(rec.get('time') or '')}</td><td>{_e(rec.get('id') or '')}</td>"
            f"<td>{_e(caller)}</td><td>{_e(model)}</td><td>{_e(decision)}</td>"
            f"<td>{_e(rec.get('status'))}</td><td>{_rules_cell(rules, describe)}</td>"
            f"<td>{_cost(rec)}</td></tr>")
    controls = []
    for name, label in FILTERS:
        options = "".join(f'<option value="{_e(v)}">{_e(v)} ({n})</option>'
                          for v, n in sorted(values[name].items(), key=lambda kv: (-kv[1], kv[0])))
        controls.append(f'<label>{_e(label)} <select data-filter="{name}" id="filter-{name}">'
                        f'<option value="">all</option>{options}</select></label>')
    note = (f" (the newest {len(rows):,} of {len(records):,}: narrow the period with --since/--until)"
            if len(records) > len(rows) else "")
    head = "".join(f"<th>{h}</th>" for h in ("time", "request", "caller", "model", "decision",
                                             "status", "rules", "USD"))
    return (f'<section><h2>Exchanges</h2><div class="filters">{"".join(controls)}'
            f'<button type="button" id="reset">show all</button></div>'
            f'<p class="sub"><span id="shown">{len(rows)}</span> of {len(rows):,} shown{_e(note)}</p>'
            f'<table id="exchanges"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"</table></section><script>{SCRIPT}</script>")
