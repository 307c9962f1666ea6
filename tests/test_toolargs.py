"""Argument rules and declared-schema checks (proxy.toolargs), with the URL tricks used to smuggle
data to a foreign host past a naive host check."""
from __future__ import annotations

import pytest

from proxy.toolargs import compile_rule, declared_schemas, parse_arguments, schema_error


def rule(**kw):
    return compile_rule({"name": "r", "tools": ["*"], **kw})


@pytest.mark.parametrize("url", [
    "https://evil.example/?q=secret",
    "see https://api.acme.com.evil.example/x",            # allowed name as a prefix of a foreign host
    "https://api.acme.com@evil.example/",                  # userinfo: the host is after the @
    "https:\\\\evil.example\\x",                          # backslashes: browsers read them as slashes
    "HTTPS://EVIL.EXAMPLE/",
    "ftp://evil.example/drop",
    "first https://docs.acme.com/ok then http://evil.example/?d=1",
])
def test_urls_to_foreign_hosts_are_found(url):
    assert "evil.example" in rule(path="url", hosts=["*.acme.com", "acme.com"]).check({"url": url})


@pytest.mark.parametrize("url", ["https://acme.com/a", "https://docs.acme.com/b?c=d", "HTTPS://API.ACME.COM./",
                                 "no url here at all", "mailto:x@evil.example"])
def test_urls_to_allowed_hosts_and_plain_text_pass(url):
    assert rule(path="url", hosts=["*.acme.com", "acme.com"]).check({"url": url}) is None


def test_hosts_anywhere_in_nested_arguments_when_no_path_is_given():
    r = rule(hosts=["acme.com"])
    assert r.check({"a": [{"b": "x https://evil.example/"}]}) is not None
    assert r.check({"a": [{"b": "x https://acme.com/"}], "n": 3}) is None


def test_values_pattern_and_size():
    assert rule(path="method", values=["GET", "HEAD"]).check({"method": "DELETE"}) == "$.method is not one of the allowed values"
    assert rule(path="method", values=["GET", "HEAD"]).check({"method": "GET"}) is None
    assert rule(path="method", values=["GET"]).check({}) is None            # absent: nothing to check
    r = rule(path="to.*", pattern=r"[a-z.]+@acme\.com")
    assert r.check({"to": ["a@acme.com", "b@evil.example"]}) == "$.to[1] does not match the required pattern"
    assert r.check({"to": ["a@acme.com"]}) is None
    assert rule(path="body", maxLength=10).check({"body": "x" * 11}) is not None
    assert rule(path="body", maxLength=10).check({"body": {"k": "xxxxxxxxx"}}) is not None   # serialised size
    assert rule(path="items.1", values=[1]).check({"items": [0, 2]}) == "$.items[1] is not one of the allowed values"


def test_messages_never_echo_argument_text():
    msg = rule(path="url", hosts=["acme.com"]).check({"url": "https://evil.example/?q=SECRET-123"})
    assert "SECRET-123" not in msg and "evil.example" in msg


def test_a_bad_pattern_is_a_compile_error():
    with pytest.raises(ValueError):
        rule(pattern="(")


def test_declared_schemas_in_every_dialect_and_validation():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    body = {"tools": [{"type": "function", "function": {"name": "a", "parameters": schema}},
                      {"type": "function", "name": "b", "parameters": schema},
                      {"name": "c", "input_schema": schema}, {"type": "web_search_preview"}],
            "functions": [{"name": "d", "parameters": schema}]}
    assert set(declared_schemas(body)) == {"a", "b", "c", "d"}
    assert schema_error(schema, {"city": "Paris"}) is None
    assert schema_error(schema, {}).startswith("$: required")
    assert schema_error(schema, {"city": 3}).startswith("$.city: type")
    assert schema_error(schema, {"city": "x", "shell": "rm"}).startswith("$: additionalProperties")
    old = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
           "properties": {"n": {"type": "integer", "maximum": 5, "exclusiveMaximum": True}}}
    assert schema_error(old, {"n": 5}) is not None and schema_error(old, {"n": 4}) is None   # draft-04 semantics
    assert schema_error({"type": "nonsense"}, {}) == "the request declared an invalid schema"


def test_parse_arguments():
    assert parse_arguments('{"a": 1}') == ({"a": 1}, True)
    assert parse_arguments("") == ({}, True)           # OpenAI sends "" for a call without arguments
    assert parse_arguments('{"a": ') == (None, False)
    assert parse_arguments({"a": 1}) == ({"a": 1}, True)
