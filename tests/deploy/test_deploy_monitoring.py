"""The Grafana dashboard and the PrometheusRule alerts, checked offline: every PromQL expression
parses (promql-parser, the Rust parser's Python binding), and every metric and label it names is
one that a running proxy really exports on /metrics."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import jsonschema
import promql_parser
import pytest
import yaml
from deploy_chart import CHART_DIR, REPO, load_values, manifests, one

from tests.limits.conftest import private_redis  # noqa: F401 - a fixture

DASHBOARD = CHART_DIR / "files" / "grafana-dashboard.json"
DOCS_DASHBOARD = REPO / "docs" / "grafana-dashboard.json"
RULE_SCHEMA = Path(__file__).with_name("prometheusrule.schema.json")
MONITORING_VALUES = CHART_DIR / "ci" / "scale-external-redis-values.yaml"
# Labels that Prometheus adds when it scrapes (the ServiceMonitor's target labels).
SCRAPE_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container"}
# Grafana's variables, replaced by what Grafana would put there.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$namespace": "llm", "$pod": ".*"}
EXPECTED_ALERTS = {
    "AifwAuditSinkDown", "AifwAuditRecordsLost", "AifwPolicyReloadFailing", "AifwGuardFailing",
    "AifwUninspectedTraffic", "AifwBlockRateSpike", "AifwUpstreamErrors", "AifwUpstreamCircuitOpen",
    "AifwUpstreamUnreachable", "AifwLimiterBackendDown", "AifwGuardLatencyHigh", "AifwLatencySLOBurn",
}


# --- what the proxy exports --------------------------------------------------------------------
def exported(text: str) -> dict[str, dict]:
    """Prometheus text -> {series name: {"labels": set, "le": set}}; a histogram's TYPE line
    gives its _bucket, _count and _sum series (present before any observation)."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            names = [m.group(1) + s for s in ("_bucket", "_count", "_sum")] if m.group(2) == "histogram" else [m.group(1)]
            for name in names:
                out.setdefault(name, {"labels": set(), "le": set()})
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$", line)
        if m and m.group(1) in out:
            pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out[m.group(1)]["labels"] |= set(pairs)
            if "le" in pairs:
                out[m.group(1)]["le"].add(pairs["le"])
    return out


def instrument_labels(metrics) -> dict[str, set[str]]:
    """Label names of every instrument, also of those with no sample yet."""
    from proxy.telemetry.metrics import _prom_name
    out = {}
    for inst in metrics.instruments:
        name = _prom_name(inst.name, inst.unit, inst.kind == "counter")
        for series in ((name,) if inst.kind == "counter" else (name + "_bucket", name + "_count", name + "_sum")):
            out[series] = set(inst.labels) | ({"le"} if series.endswith("_bucket") else set())
    return out


@pytest.fixture
async def live_metrics(start_proxy, private_redis):  # noqa: F811
    """/metrics of a proxy that has every optional series: a breaker, Redis rate limits, a probed
    upstream, the audit log, one chat completion."""
    from tests.conftest import minimal_policy
    from tests.e2e.helpers import MSG, oa
    policy = yaml.safe_load(minimal_policy())
    policy["upstreams"]["openai"]["breaker"] = {"failures": 5}
    policy["guards"]["ratelimit"] = {"backend": "redis", "redis": {"url": private_redis.url},
                                     "limits": [{"name": "rpm", "requests": "1000/minute"}]}
    proxy = await start_proxy(yaml.safe_dump(policy))
    async with oa(proxy.openai_url) as client:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    for _ in range(600):   # the first probe round and the exchange's completion run in the background
        if proxy.holder.reachability.rounds and proxy.holder.telemetry.metrics.requests.values:
            break
        await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/metrics") as r:
            text = await r.text()
    series = exported(text)
    for name, labels in instrument_labels(proxy.holder.telemetry.metrics).items():
        series[name]["labels"] |= labels
    return series


# --- PromQL ------------------------------------------------------------------------------------
def selectors(expr: str) -> list[tuple[str | None, dict[str, str]]]:
    """(metric name, {label: value}) of every vector selector; raises ValueError when the
    expression does not parse."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, {m.name: m.value for m in node.matchers.matchers}))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def problems(expr: str, series: dict[str, dict]) -> list[str]:
    out = []
    for name, matchers in selectors(expr):
        if name not in series:
            out.append(f"{name}: not exported")
            continue
        unknown = set(matchers) - series[name]["labels"] - SCRAPE_LABELS
        if unknown:
            out.append(f"{name}: no label {sorted(unknown)}")
        if "le" in matchers and matchers["le"] not in series[name]["le"]:
            out.append(f"{name}: no bucket le={matchers['le']!r} (exported: {sorted(series[name]['le'])})")
    return out


def dashboard_exprs(dashboard: dict) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", ())]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            # label_values(SELECTOR, label): the selector is PromQL
            exprs.append(re.fullmatch(r"label_values\((.*), \w+\)", var["query"]["query"]).group(1))
    for name, value in GRAFANA_VARIABLES.items():
        exprs = [e.replace(name, value) for e in exprs]
    return exprs


@pytest.fixture(scope="module")
def rule_objects():
    return manifests(load_values(MONITORING_VALUES))


def rules_of(objects) -> list[dict]:
    rule = one(objects, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


# --- tests -------------------------------------------------------------------------------------
def test_the_checker_catches_bad_expressions():
    series = {"aifw_requests_total": {"labels": {"decision"}, "le": set()},
              "aifw_x_seconds_bucket": {"labels": {"le"}, "le": {"10.0"}}}
    with pytest.raises(ValueError):
        selectors("sum(rate(aifw_requests_total[5m])")
    assert problems('sum(rate(aifw_requests_totl{decision="blocked"}[5m]))', series) == ["aifw_requests_totl: not exported"]
    assert problems('aifw_requests_total{verdict="x", namespace="a"}', series) == ["aifw_requests_total: no label ['verdict']"]
    assert problems('aifw_x_seconds_bucket{le="10"}', series)[0].startswith("aifw_x_seconds_bucket: no bucket")
    assert problems('aifw_x_seconds_bucket{le="10.0"} / aifw_requests_total', series) == []


def test_docs_copy_of_the_dashboard_is_the_charts():
    assert DOCS_DASHBOARD.read_bytes() == DASHBOARD.read_bytes(), (
        "docs/grafana-dashboard.json differs: cp helm/aifw/files/grafana-dashboard.json docs/")


def test_dashboard_is_grafana_json_on_a_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            # no hard-wired data source: the dashboard works in any Grafana
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


async def test_dashboard_queries_parse_and_name_exported_metrics(live_metrics):
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert len(exprs) >= 25
    assert {p for e in exprs for p in problems(e, live_metrics)} == set()
    # and the dashboard shows every metric the proxy exports
    shown = {name for e in exprs for name, _ in selectors(e)}
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in live_metrics}
    assert {f for f in families if not any(s.startswith(f) for s in shown)} == set()


async def test_alert_expressions_parse_and_name_exported_metrics(rule_objects, live_metrics):
    rules = rules_of(rule_objects)
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert problems(rule["expr"], live_metrics) == [], rule["alert"]


def test_prometheus_rule_matches_the_crd_schema(rule_objects):
    rule = one(rule_objects, "PrometheusRule")
    jsonschema.validate(rule, json.loads(RULE_SCHEMA.read_text()))
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for r in rules_of(rule_objects):
        assert r["labels"]["severity"] in {"critical", "warning"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_the_schema_rejects_a_misspelt_rule(rule_objects):
    rule = json.loads(json.dumps(one(rule_objects, "PrometheusRule")))
    rule["spec"]["groups"][0]["rules"][0]["fore"] = rule["spec"]["groups"][0]["rules"][0].pop("for")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, json.loads(RULE_SCHEMA.read_text()))


def test_alerts_select_this_releases_series(rule_objects):
    for rule in rules_of(rule_objects):
        for name, matchers in selectors(rule["expr"]):
            assert (matchers["namespace"], matchers["job"]) == ("llm", "aifw"), rule["alert"]


def test_thresholds_and_selector_come_from_values():
    values = load_values(MONITORING_VALUES)
    values["metrics"]["prometheusRule"]["selector"] = 'cluster="eu1", job="llm-gateway"'
    values["metrics"]["prometheusRule"]["thresholds"] = {
        "uninspectedRatio": 0.02, "blockRateSpikeFactor": 4, "blockRateMin": 0.1, "upstreamErrorRatio": 0.2,
        "guardP99Seconds": 0.5, "requestSeconds": "30.0", "requestObjective": 0.99}
    rules = {r["alert"]: r for r in rules_of(manifests(values))}
    assert rules["AifwGuardLatencyHigh"]["expr"].rstrip().endswith("> 0.5")
    assert 'le="30.0"' in rules["AifwLatencySLOBurn"]["expr"] and "(1 - 0.99)" in rules["AifwLatencySLOBurn"]["expr"]
    assert "> 4 * (" in rules["AifwBlockRateSpike"]["expr"]
    assert all(selectors(r["expr"])[0][1].get("cluster") == "eu1" for r in rules.values())


def test_monitoring_objects_are_off_by_default(rendered_cases):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered_cases["default"]}
    assert ("ConfigMap", "aifw-dashboard") not in kinds
    assert not [k for k in kinds if k[0] == "PrometheusRule"]


def test_dashboard_configmap_carries_the_file_for_the_sidecar(rule_objects):
    cm = one(rule_objects, "ConfigMap", "aifw-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "LLM"}
    assert json.loads(cm["data"]["aifw.json"]) == json.loads(DASHBOARD.read_text())
    assert len(cm["data"]["aifw.json"]) < 256 * 1024   # far below a ConfigMap's 1 MiB


async def test_latency_objective_choices_are_the_exported_buckets(live_metrics):
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    thresholds = schema["properties"]["metrics"]["properties"]["prometheusRule"]["properties"]["thresholds"]
    choices = set(thresholds["properties"]["requestSeconds"]["enum"])
    assert choices == live_metrics["aifw_request_duration_seconds_bucket"]["le"] - {"+Inf"}


async def test_every_exported_metric_is_documented(live_metrics):
    table = (REPO / "docs" / "audit.md").read_text()
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in live_metrics}
    assert {f for f in families if f"| `{f}` |" not in table} == set()
