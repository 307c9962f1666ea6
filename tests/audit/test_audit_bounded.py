"""Bounded records: text the client controls is capped in audit records, spans and metric
labels; a client cannot make a megabyte record or a new metric series per request."""
from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp
import orjson
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.audit.chain import canonical
from proxy.audit.record import build_record
from proxy.bounded import MAX_MODEL_LABELS, ModelLabels
from proxy.globs import GlobSet
from proxy.resilience.config import RetryPolicy
from proxy.resilience.routes import Route
from proxy.telemetry import Telemetry
from proxy.telemetry.config import compile_section
from tests.audit.helpers import make_exchange
from tests.e2e.helpers import policy

MB = 1_000_000


def test_every_client_controlled_field_is_capped_in_the_record():
    ex = make_exchange(1, user="u" * MB, model="m" * MB)
    ex.client_ip = "c" * MB
    ex.error = "e" * MB
    ex.identity.groups = tuple(f"g{i}" * 1000 for i in range(1000))
    ex.uninspected = ["unrecognised body: " + "x" * MB]
    ex.decision = "bypassed"
    from proxy.resilience.attempts import Attempt
    ex.attempts = [Attempt("openai", "m" * MB, 0.0, 1.0, 502, "status"), Attempt("b", "m" * MB, 1.0)]
    rec = build_record(ex)
    assert len(canonical(rec)) < 40_000
    assert rec["model"].startswith("mmm") and rec["model"].endswith(f"[{MB} chars]")
    assert rec["user"].endswith(f"[{MB} chars]") and len(rec["reason"]) < 400


def test_model_labels_are_bounded():
    labels = ModelLabels()
    policy = SimpleNamespace(digest="d", routes=(Route(GlobSet.of(["gpt-4o", "claude-*"]), (), RetryPolicy()),))
    assert labels.label("m" * MB, policy) == "other"
    assert labels.label("bad model\nname", policy) == "other"
    for i in range(MAX_MODEL_LABELS * 4):
        labels.label(f"junk-{i}", policy)
    assert len(labels.seen) == MAX_MODEL_LABELS
    assert labels.label("junk-9999", policy) == "other"
    assert labels.label("gpt-4o", policy) == "gpt-4o"          # the policy's own names always
    assert labels.label(None, policy) == "unknown"


def test_metrics_and_spans_stay_bounded():
    spans = InMemorySpanExporter()
    tel = Telemetry(compile_section({}), span_exporter=spans)
    for i in range(500):
        ex = make_exchange(i, model=f"model-{i}-" + "z" * (MB if i == 0 else 10))
        ex.policy = SimpleNamespace(name="p", digest="d", routes=())
        tel.observe(ex)
    text, _ = tel.prometheus_text()
    models = set(re.findall(rb'aifw_tokens_total\{[^}]*model="([^"]*)"', text))
    assert len(models) <= MAX_MODEL_LABELS + 1 and b"other" in models
    assert len(text) < 200_000
    attrs = [dict(s.attributes) for s in spans.get_finished_spans() if "gen_ai.request.model" in s.attributes]
    assert max(len(a["gen_ai.request.model"]) for a in attrs) < 300


async def test_a_megabyte_model_name_through_the_proxy(fake, start_proxy, tmp_path):
    proxy = await start_proxy(policy(server={"maxBodyBytes": 4 * MB}))
    body = {"model": "gpt-" + "x" * MB, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(proxy.openai_url + "/chat/completions", json=body,
                             headers={"Authorization": "Bearer sk-test"}) as resp:
            await resp.read()
        async with http.get(proxy.url + "/metrics") as resp:
            metrics = await resp.read()
    await proxy.stop()
    audit = proxy.holder.policy.sections["audit"].path
    import pathlib
    lines = [l for f in pathlib.Path(audit).glob("audit-*.jsonl") for l in f.read_bytes().splitlines()]
    [rec] = [orjson.loads(l) for l in lines if b'"t":"request"' in l]
    assert max(map(len, lines)) < 5000
    assert rec["model"].endswith(f"[{MB + 4} chars]")
    assert len(metrics) < 100_000
