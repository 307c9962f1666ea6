"""The structured-output guard without a socket: where formats and answers sit in each dialect,
what the guard decides on whole answers, and what it holds, releases or cuts in streams."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from proxy import pipeline
from proxy.endpoints import resolve
from proxy.guards.structured import (INVALID_JSON, REPAIR_FAILED, REPAIRED, SCHEMA_VIOLATION, TOO_LARGE,
                                     StructuredConfig, StructuredOutputGuard, judge)
from proxy.parsing import structured as wire
from proxy.parsing.sse import SSEParser
from proxy.parsing.stream import StreamProcessor, StreamStopped
from tests.parsing.test_stream_processor import PATHS, body, decoded, make_exchange

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "temp"],
          "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}}}
GOOD = '{"city": "Paris", "temp": 21}'
WRONG_TYPE = '{"city": "Paris", "temp": "warm"}'
NOT_JSON = '{"city": "Paris", "temp": 21'

CHAT_FORMAT = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA, "strict": True}}
FORMATS = {  # the same request in each dialect's words
    "chat": {"response_format": CHAT_FORMAT},
    "responses": {"text": {"format": {"type": "json_schema", "name": "w", "schema": SCHEMA, "strict": True}}},
    "messages": {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
}


def test_formats_in_every_dialect():
    for kind, extra in FORMATS.items():
        assert wire.requested(kind, {**body(kind), **extra}) == wire.OutputFormat("json_schema", SCHEMA), kind
    assert wire.requested("chat", {"response_format": {"type": "json_object"}}) == wire.OutputFormat("json_object")
    assert wire.requested("responses", {"text": {"format": {"type": "json_object"}}}).kind == "json_object"
    assert wire.requested("messages", {"output_format": {"type": "json_schema", "schema": SCHEMA}}).schema == SCHEMA
    for kind in ("chat", "responses", "messages", "completions", "embeddings"):
        assert wire.requested(kind, body(kind) if kind in PATHS else {}) is None, kind
    assert wire.requested("chat", {"response_format": {"type": "text"}}) is None
    assert wire.requested("responses", {"text": {"format": {"type": "text"}}}) is None
    assert wire.requested("chat", {"response_format": {"type": "json_schema"}}).schema == {}   # no schema: any JSON


def test_answers_skip_refusals_and_tool_calls():
    chat = {"choices": [{"index": 0, "message": {"content": GOOD}},
                        {"index": 1, "message": {"content": None, "refusal": "I can't help with that."}},
                        {"index": 2, "message": {"content": None, "tool_calls": [{"function": {}}]}}]}
    assert wire.answers("chat", chat) == [(0, GOOD)]
    resp = {"output": [{"type": "reasoning"}, {"type": "message", "content": [
        {"type": "output_text", "text": GOOD}, {"type": "refusal", "refusal": "no"}]}]}
    assert wire.answers("responses", resp) == [((1, 0), GOOD)]
    msg = {"content": [{"type": "thinking", "thinking": "hm"}, {"type": "text", "text": GOOD}], "stop_reason": "end_turn"}
    assert wire.answers("messages", msg) == [(1, GOOD)]
    assert wire.answers("messages", {**msg, "stop_reason": "refusal"}) == []
    assert wire.answers("messages", {"content": [{"type": "tool_use", "input": {}}, {"type": "text", "text": "x"}]}) == []


def test_judge_names_rule_path_and_keyword_never_the_text():
    fmt = wire.OutputFormat("json_schema", SCHEMA)
    assert judge(fmt, GOOD) is None
    rule, path, why = judge(fmt, WRONG_TYPE)
    assert (rule, path) == (SCHEMA_VIOLATION, "$.temp") and why.startswith("$.temp: type") and "warm" not in why
    assert judge(fmt, '{"city": "Paris"}')[:2] == (SCHEMA_VIOLATION, "$")          # required
    assert judge(fmt, NOT_JSON)[:2] == (INVALID_JSON, "$")
    assert judge(wire.OutputFormat("json_object"), "[1, 2]")[0] == SCHEMA_VIOLATION
    assert judge(wire.OutputFormat("json_object"), '{"any": "object"}') is None
    assert judge(wire.OutputFormat("json_schema", {"type": "nonsense"}), GOOD)[0] == SCHEMA_VIOLATION
    # a key a model made up is not copied into the path (audit records hold no model text)
    loose = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert judge(wire.OutputFormat("json_schema", loose), '{"mail me at x@y.com": "a"}')[1] == "$.*"


def test_repair_body_appends_the_answer_and_the_problem():
    chat = {"model": "m", "messages": [{"role": "user", "content": "weather?"}], **FORMATS["chat"]}
    out = wire.repair_body("chat", chat, NOT_JSON, "it is not JSON")
    assert out["messages"][:1] == chat["messages"] and out["response_format"] == CHAT_FORMAT
    assert out["messages"][1] == {"role": "assistant", "content": NOT_JSON}
    assert out["messages"][2]["role"] == "user" and "it is not JSON" in out["messages"][2]["content"]
    assert len(chat["messages"]) == 1                                                  # not changed in place
    out = wire.repair_body("responses", {"input": "weather?"}, GOOD, "p")
    assert [i["role"] for i in out["input"]] == ["user", "assistant", "user"]
    assert wire.repairable("chat", chat) and not wire.repairable("chat", {**chat, "n": 2})
    assert wire.repairable("responses", {"input": []}) and not wire.repairable("responses", {"input": None})


def exchange(kind: str, guard: StructuredOutputGuard, extra: dict | None = None) -> object:
    ex = make_exchange(guard)
    ex.endpoint = resolve("POST", PATHS[kind])
    ex.body = {**body(kind), **(FORMATS[kind] if extra is None else extra)}
    asyncio.run(guard.on_request(ex))
    return ex


def answer(ex, text: str) -> object:
    ex.response_body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}]}
    return asyncio.run(guard_of(ex).on_response(ex))


def guard_of(ex) -> StructuredOutputGuard:
    return ex.scope.guards[0]


def rules(ex) -> list[tuple]:
    return [(f.rule_ids, f.action, f.detail) for f in ex.findings]


def test_whole_answers_flag_block_monitor():
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="block")))
    assert answer(ex, GOOD) is None and ex.findings == []
    verdict = answer(ex, WRONG_TYPE)
    assert verdict.code == "content_filter" and verdict.rule_ids == (SCHEMA_VIOLATION,) and "$.temp" in verdict.message
    assert verdict.in_answer             # refused as an answer, like the tools guard refuses one
    assert rules(ex) == [((SCHEMA_VIOLATION,), "blocked", {"path": "$.temp"})]

    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="flag")))
    assert answer(ex, NOT_JSON) is None and rules(ex) == [((INVALID_JSON,), "observed", {"path": "$"})]
    assert ex.decision == "allowed"

    guard = StructuredOutputGuard(StructuredConfig(action="block"))
    guard.mode = "monitor"
    ex = exchange("chat", guard)
    assert answer(ex, NOT_JSON) is None and ex.decision == "monitored"
    assert rules(ex) == [((INVALID_JSON,), "would_block", {"path": "$"})]


def test_requests_without_structured_output_leave_no_state():
    guard = StructuredOutputGuard(StructuredConfig())
    ex = exchange("chat", guard, extra={})
    assert guard.name not in ex.state and answer(ex, NOT_JSON) is None and ex.findings == []
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(json_object=False)),
                  extra={"response_format": {"type": "json_object"}})
    assert ex.state == {}


def test_repair_asks_for_bounded_attempts_then_falls_back():
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="repair", attempts=2, fallback="block")))
    assert answer(ex, NOT_JSON) is None
    repair, ex.repair = ex.repair, None
    assert repair.answer == 0 and repair.problem.startswith("it is not JSON")
    assert repair.fallback.rule_ids == (INVALID_JSON, REPAIR_FAILED) and repair.failed.rule_ids == (REPAIR_FAILED,)
    assert answer(ex, WRONG_TYPE) is None and ex.repair is not None          # the second of two
    ex.repair = None
    verdict = answer(ex, WRONG_TYPE)                                         # none left: the fallback
    assert verdict.rule_ids == (SCHEMA_VIOLATION, REPAIR_FAILED) and ex.repair is None
    assert [f.action for f in ex.findings] == ["retried", "retried", "blocked"]

    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="repair", fallback="flag")))
    answer(ex, NOT_JSON)
    ex.repair = None
    assert answer(ex, GOOD) is None
    assert rules(ex) == [((INVALID_JSON,), "retried", {"path": "$"}), ((REPAIRED,), "observed", {})]
    # several choices cannot be continued as one conversation: the fallback at once
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="repair", fallback="flag")),
                  extra={**FORMATS["chat"], "n": 2})
    assert answer(ex, NOT_JSON) is None and ex.repair is None and rules(ex)[0][1] == "observed"


def run_stream(ex, kind: str, data: bytes) -> list[bytes]:
    proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
    out: list[bytes] = []
    for ev in SSEParser().feed(data):
        out.extend(proc.process(ev))
    return out + proc.finish()


def streamed_text(kind: str, events) -> list[str]:
    """The answer's text deltas as the client gets them (held ones go out empty: one event out
    per event in)."""
    out = []
    for _, o in events:
        if o == "[DONE]":
            continue
        if kind == "chat" and o["choices"] and o["choices"][0]["delta"].get("content"):
            out.append(o["choices"][0]["delta"]["content"])
        elif kind == "responses" and o["type"] == "response.output_text.delta" and o["delta"]:
            out.append(o["delta"])
        elif kind == "messages" and o["type"] == "content_block_delta" and o["delta"]["text"]:
            out.append(o["delta"]["text"])
    return out


@pytest.fixture
async def streams(fake):
    """Streams of the fake provider answering ``text`` in five deltas, per dialect."""
    import aiohttp

    cache: dict = {}
    async with aiohttp.ClientSession() as s:
        for kind in ("chat", "responses", "messages"):
            for text in (GOOD, WRONG_TYPE):
                headers = {"authorization": "Bearer k", "anthropic-version": "2023-06-01", "x-fake-reply": text,
                           "x-fake-chunks": "5"}
                async with s.post(fake.url + PATHS[kind], json={**body(kind), "stream": True},
                                  headers=headers) as r:
                    cache[kind, text] = await r.read()
    return cache


def test_block_holds_a_structured_stream_and_releases_it_whole(streams):
    for kind in ("chat", "responses", "messages"):
        ex = exchange(kind, StructuredOutputGuard(StructuredConfig(action="block")))
        assert streamed_text(kind, decoded(run_stream(ex, kind, streams[kind, GOOD]))) == [GOOD], kind
        assert ex.findings == []


def test_block_ends_a_broken_stream_with_nothing_of_it(streams):
    for kind in ("chat", "responses", "messages"):
        ex = exchange(kind, StructuredOutputGuard(StructuredConfig(action="repair", fallback="block")))
        proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
        sent: list[bytes] = []
        with pytest.raises(StreamStopped) as stop:
            for ev in SSEParser().feed(streams[kind, WRONG_TYPE]):
                sent.extend(proc.process(ev))
        events = decoded(sent + stop.value.events)
        assert streamed_text(kind, events) == [], kind
        assert stop.value.verdict.rule_ids == (SCHEMA_VIOLATION,) and ex.repair is None
        assert rules(ex) == [((SCHEMA_VIOLATION,), "blocked", {"path": "$.temp"})]


def test_flag_streams_as_it_comes_and_records_at_the_end(streams):
    for kind in ("chat", "responses", "messages"):
        ex = exchange(kind, StructuredOutputGuard(StructuredConfig(action="flag")))
        assert len(streamed_text(kind, decoded(run_stream(ex, kind, streams[kind, WRONG_TYPE])))) == 5, kind
        assert rules(ex) == [((SCHEMA_VIOLATION,), "observed", {"path": "$.temp"})]


def test_a_stream_longer_than_the_hold_ends_or_passes_unjudged(streams):
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="block", max_held=10)))
    with pytest.raises(StreamStopped) as stop:
        run_stream(ex, "chat", streams["chat", GOOD])
    assert stop.value.verdict.rule_ids == (TOO_LARGE,)
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="flag", max_held=10)))
    assert "".join(streamed_text("chat", decoded(run_stream(ex, "chat", streams["chat", WRONG_TYPE])))) == WRONG_TYPE
    assert rules(ex) == [((TOO_LARGE,), "observed", {})]


def test_streams_of_other_requests_stay_byte_for_byte_and_passive(streams):
    for kind in ("chat", "responses", "messages"):
        ex = exchange(kind, StructuredOutputGuard(StructuredConfig(action="block")), extra={})
        proc = StreamProcessor(ex, kind, pipeline.chunk_runner(ex), pipeline.end_runner(ex))
        assert proc.passive, kind
        assert b"".join(run_stream(ex, kind, streams[kind, WRONG_TYPE])) == streams[kind, WRONG_TYPE]


def test_a_refused_stream_is_not_judged():
    def chunk(delta, finish=None):
        return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"
    data = (chunk({"role": "assistant", "content": ""}) + chunk({"refusal": "I can't help with that."})
            + chunk({}, "stop") + b"data: [DONE]\n\n")
    ex = exchange("chat", StructuredOutputGuard(StructuredConfig(action="block")))
    events = decoded(run_stream(ex, "chat", data))
    assert events[-2][1]["choices"][0]["finish_reason"] == "stop" and ex.findings == []


@pytest.mark.parametrize("section, message", [
    ({"action": "fix"}, "'fix' is not one of"),
    ({"repair": {"attempts": 9}}, "9 is greater than the maximum of 3"),
    ({"repair": {"fallback": "repair"}}, "'repair' is not one of"),
    ({"actions": "flag"}, "unknown key 'actions' (did you mean 'action'?)"),
    ({"repair": {"tries": 2}}, "unknown key 'tries'"),
])
def test_policy_check_refuses_bad_sections(section, message, tmp_path):
    import yaml

    from proxy.policy.compile import check_files
    from tests.conftest import minimal_policy

    doc = yaml.safe_load(minimal_policy())
    doc["guards"] = {"structured_output": section}
    doc["scopes"] = [{"name": "s", "match": {"models": ["x"]}, "guards": {"structured_output": {"action": "flag"}}}]
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = {"FAKE_URL": "http://127.0.0.1:9", "FAKE_OPENAI_URL": "http://127.0.0.1:9/v1"}
    problems = [str(p) for p in check_files([str(path)], env)]
    assert any(message in p and "structured_output" in p for p in problems), problems
    doc["guards"] = {"structured_output": {"action": "repair"}}
    path.write_text(yaml.safe_dump(doc))
    assert check_files([str(path)], env) == []


def test_every_rule_the_guard_reports_is_described():
    from proxy.ruleinfo import describe

    for rule in (INVALID_JSON, SCHEMA_VIOLATION, REPAIRED, REPAIR_FAILED, TOO_LARGE):
        assert describe(rule) != "(no description)", rule
