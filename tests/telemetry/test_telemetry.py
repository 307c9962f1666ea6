"""Telemetry: spans per exchange, metrics, Prometheus text, logging setup."""
from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from proxy.telemetry import Telemetry, compile_section
from proxy.telemetry.logs import setup_logging
from proxy.verdict import Finding
from tests.audit.helpers import make_exchange

pytestmark = pytest.mark.usefixtures("restore_logging")

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans():
    return InMemorySpanExporter()


def sample(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = "^" + re.escape(name + ("{" + want + "}" if want else "")) + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"{name} {labels} not in:\n{text}"
    return float(m.group(1))


def test_span_tree_from_exchange_spans(spans):
    tel = Telemetry(compile_section({}), span_exporter=spans)
    ex = make_exchange(1, blocked_rule="inj.001")
    ex.headers = {"traceparent": TRACEPARENT, "authorization": "Bearer sk-secretsecretsecret"}
    tel.observe(ex)
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "aifw chat.completions")
    children = [s for s in finished if s is not root]
    assert [c.name for c in children] == ["guard:injection.on_request", "upstream"]
    assert root.kind == SpanKind.SERVER and children[1].kind == SpanKind.CLIENT
    assert format(root.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert all(c.parent.span_id == root.context.span_id for c in children)
    # monotonic span times map onto the exchange's wall-clock start
    start_ns = int(ex.started_wall * 1e9)
    assert abs(root.start_time - start_ns) < 1000
    assert abs((root.end_time - root.start_time) / 1e9 - 0.25) < 1e-5
    upstream = children[1]
    assert abs((upstream.start_time - root.start_time) / 1e9 - 0.05) < 1e-5
    attrs = dict(root.attributes)
    assert attrs["aifw.decision"] == "blocked" and attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["aifw.rule_ids"] == ("inj.001", "pii.email")
    assert attrs["gen_ai.usage.input_tokens"] == 12 and attrs["gen_ai.usage.output_tokens"] == 30
    flat = json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()})
    assert "EMAIL_1" not in flat and "example.com" not in flat and "sk-" not in flat


def test_error_status_marks_the_span(spans):
    tel = Telemetry(compile_section({}), span_exporter=spans)
    ex = make_exchange(2)
    ex.status, ex.decision, ex.error = 502, "error", "upstream_error"
    tel.observe(ex)
    root = next(s for s in spans.get_finished_spans() if s.name.startswith("aifw"))
    assert root.status.status_code == StatusCode.ERROR


def test_no_tracer_without_endpoint():
    assert Telemetry(compile_section({})).tracer is None


class FakeAudit:
    def __init__(self):
        self.depth, self.records_lost, self.broken = 7, 2, "No space left on device"

    def queue_depth(self):
        return self.depth


def test_prometheus_text_has_every_metric():
    tel = Telemetry(compile_section({}))
    tel.watch_audit(FakeAudit())
    tel.observe(make_exchange(1, blocked_rule="inj.001"))
    tel.observe(make_exchange(2))
    bypass = make_exchange(3)
    bypass.uninspected.append("pii failed open")
    bypass.add_finding(Finding("pii", ("pii.fault",), action="fault"))
    tel.observe(bypass)
    tel.watch_backends(lambda: {"ratelimit": False, "resilience": True})
    tel.count_reload(True)
    tel.count_reload(False)
    body, ctype = tel.prometheus_text()
    text = body.decode()
    assert ctype.startswith("text/plain; version=0.0.4")
    assert sample(text, "aifw_requests_total", decision="allowed", endpoint="chat.completions", status="200") == 2
    assert sample(text, "aifw_requests_total", decision="blocked", endpoint="chat.completions", status="400") == 1
    assert sample(text, "aifw_blocks_total", guard="injection", rule="inj.001") == 1
    assert sample(text, "aifw_tokens_total", group="eng", model="gpt-4o", type="prompt") == 36
    assert sample(text, "aifw_tokens_total", group="ml", model="gpt-4o", type="completion") == 90
    assert sample(text, "aifw_guard_duration_seconds_count", guard="pii") == 3
    assert sample(text, "aifw_guard_duration_seconds_bucket", guard="pii", le="0.0025") == 3
    assert sample(text, "aifw_guard_duration_seconds_bucket", guard="pii", le="0.001") == 0
    assert sample(text, "aifw_upstream_duration_seconds_count", upstream="openai") == 3
    assert sample(text, "aifw_bypasses_total", endpoint="chat.completions") == 1
    assert sample(text, "aifw_guard_faults_total", guard="pii") == 1
    assert sample(text, "aifw_backend_up", backend="ratelimit") == 0
    assert sample(text, "aifw_backend_up", backend="resilience") == 1
    assert sample(text, "aifw_policy_reloads_total", result="ok") == 1
    assert sample(text, "aifw_policy_reloads_total", result="failed") == 1
    assert sample(text, "aifw_policy_reload_failing") == 1
    assert sample(text, "aifw_audit_queue_depth") == 7
    assert sample(text, "aifw_audit_records_lost_total") == 2
    assert sample(text, "aifw_audit_sink_up") == 0
    assert "# TYPE aifw_guard_duration_seconds histogram" in text


def test_label_values_are_escaped_and_bounded():
    tel = Telemetry(compile_section({}))
    ex = make_exchange(1, model='evil"\nmodel' + "x" * 500)
    ex.identity.groups = ('evil"\ngroup' + "x" * 500,)
    tel.observe(ex)
    text = tel.prometheus_text()[0].decode()
    line = next(l for l in text.splitlines() if l.startswith("aifw_tokens_total"))
    assert 'group="evil\\"\\ngroup' in line and len(line) < 400
    assert 'model="other"' in line          # not a plausible model name: no series of its own


def test_metrics_reach_an_otlp_style_exporter():
    reader = InMemoryMetricReader()
    from proxy.telemetry.metrics import Metrics
    m = Metrics("aifw-test", [reader])
    m.requests.add(1, ("e", "200", "allowed"))
    m.requests.add(2, ("e", "200", "allowed"))
    metrics = {x.name: x for rm in reader.get_metrics_data().resource_metrics
               for sm in rm.scope_metrics for x in sm.metrics}
    points = list(metrics["aifw.requests"].data.data_points)
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({"endpoint": "e", "status": "200", "decision": "allowed"}, 3)]


def test_metrics_off():
    tel = Telemetry(compile_section({"metrics": False}))
    tel.observe(make_exchange(1))
    assert tel.prometheus_text()[0] == b""


def test_observe_never_raises():
    tel = Telemetry(compile_section({}))
    tel.observe(object())        # not an exchange at all


async def test_close():
    tel = Telemetry(compile_section({}), span_exporter=InMemorySpanExporter())
    await tel.close()


def test_json_logs_for_structlog_and_stdlib():
    stream = io.StringIO()
    assert setup_logging("auto", stream) == "json"          # not a terminal
    structlog.get_logger("t").info("audit_sink_broken", reason="disk full")
    logging.getLogger("aiohttp.access").warning("stdlib %s", "line")
    lines = [json.loads(l) for l in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "audit_sink_broken" and lines[0]["level"] == "info"
    assert lines[0]["reason"] == "disk full" and lines[0]["timestamp"].endswith("Z")
    assert lines[1]["event"] == "stdlib line" and lines[1]["logger"] == "aiohttp.access"


def test_console_logs():
    stream = io.StringIO()
    assert setup_logging("console", stream) == "console"
    structlog.get_logger().warning("reloaded", policy="default")
    out = stream.getvalue()
    assert "reloaded" in out and "policy=default" in out and not out.startswith("{")



def test_status_labels_read_from_the_table_as_formatted():
    """The metric's status label comes from a table for HTTP's statuses; every status, in it or
    not (none, 0, out of range), must read as the label format says."""
    from proxy.telemetry import _STATUS_LABELS
    for status in [None, *range(-5, 1000)]:
        assert _STATUS_LABELS[status] == str(status or 0), status
    assert len(_STATUS_LABELS) == 500    # looking up a status outside the table keeps nothing
