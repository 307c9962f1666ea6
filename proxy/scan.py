"""``aifw scan``: why would this text (request body, answer) be blocked? Runs the policy's guards
exactly as the proxy would (proxy/offline.py) and explains every finding (proxy/explain.py)."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import orjson

ROLES = ("user", "system", "developer", "assistant", "tool")
ENDPOINTS = ("chat.completions", "completions", "embeddings", "responses", "messages")


def read_input(value: str) -> str:
    """``-`` is standard input, an existing file is read, anything else is the text itself."""
    if value == "-":
        return sys.stdin.read()
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as fh:
            return fh.read()
    return value


def _json_object(text: str, what: str) -> dict:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def request_endpoint(body: dict) -> str:
    """The endpoint a request body is shaped for (``--endpoint`` decides when given)."""
    model = body.get("model")
    if "input" in body and isinstance(model, str) and "embed" in model:
        return "embeddings"
    if "input" in body or "instructions" in body:
        return "responses"
    if "prompt" in body:
        return "completions"
    if "messages" in body:
        anthropic = "system" in body or (isinstance(model, str) and model.startswith("claude"))
        return "messages" if anthropic else "chat.completions"
    raise ValueError("cannot tell the endpoint of this request body: give --endpoint")


def answer_endpoint(body: dict) -> str:
    if body.get("object") == "response" or "output" in body:
        return "responses"
    if body.get("type") == "message" or isinstance(body.get("content"), list):
        return "messages"
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict) and "text" in choices[0]:
        return "completions"
    return "chat.completions"


def text_body(endpoint: str, role: str, text: str | None, system: str | None, model: str | None) -> dict:
    """The request a client would send with this text as its ``role`` turn."""
    body: dict[str, Any] = {} if model is None else {"model": model}
    if endpoint == "messages":
        body["max_tokens"] = 1
        if system:
            body["system"] = system
        if text is not None and role not in ("user", "assistant"):
            raise ValueError("the messages endpoint takes --role user or assistant (--system for a system prompt)")
        body["messages"] = [] if text is None else [{"role": role, "content": text}]
        return body
    if endpoint in ("completions", "embeddings"):
        if text is None:
            raise ValueError(f"the {endpoint} endpoint needs a text")
        body["prompt" if endpoint == "completions" else "input"] = text
        return body
    if endpoint == "responses":
        if system:
            body["instructions"] = system
        body["input"] = [] if text is None else [{"role": role, "content": text}]
        return body
    messages = [{"role": "system", "content": system}] if system else []
    if text is not None:
        turn: dict[str, Any] = {"role": role, "content": text}
        if role == "tool":
            turn["tool_call_id"] = "call_scan"
        messages.append(turn)
    body["messages"] = messages
    return body


def build(args: argparse.Namespace) -> tuple[str, dict, Any]:
    """(endpoint, request body, answer or None) from the command line."""
    given = read_input(args.input) if args.input is not None else None
    if args.request:
        with open(args.request, encoding="utf-8") as fh:
            body = _json_object(fh.read(), args.request)
        endpoint = args.endpoint or request_endpoint(body)
        if args.model:
            body["model"] = args.model
        if given is not None and not args.answer:
            raise ValueError("with --request, a TEXT is the answer: add --answer")
    else:
        body = None
        endpoint = args.endpoint
    answer: Any = None
    if args.answer:
        if given is None:
            raise ValueError("--answer needs the answer: TEXT, - or FILE")
        answer = given
        if given.lstrip().startswith("{"):
            answer = _json_object(given, "the answer")
            endpoint = endpoint or answer_endpoint(answer)
    endpoint = endpoint or "chat.completions"
    if body is None:
        text = None if args.answer else given
        if text is None and not args.answer:
            raise ValueError("give a TEXT, - (standard input), a FILE, or --request FILE.json")
        body = text_body(endpoint, args.role, text, args.system, args.model)
    return endpoint, body, answer


async def _judge(policy, services, endpoint: str, body: dict, answer: Any, args: argparse.Namespace):
    from .exchange import Identity
    from .offline import endpoint_named, finish, judge, new_exchange
    identity = Identity(key_id=args.key or "scan", user=args.user, groups=tuple(args.group or ()),
                        key_name=args.key)
    ex = new_exchange(policy, endpoint_named(endpoint), identity, trace=True)
    try:
        return await judge(ex, body=body, answer=answer)
    finally:
        await finish(policy, services)


def cmd_scan(args: argparse.Namespace) -> int:
    from .explain import explain, render
    from .offline import load_policy, prepared_or_reported
    from .services import Services
    services = Services()
    prepared = prepared_or_reported(lambda: (build(args), load_policy(args.policy, services)))
    if prepared is None:
        return 2
    (endpoint, body, answer), policy = prepared
    report = explain(asyncio.run(_judge(policy, services, endpoint, body, answer, args)))
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render(report))
    return 1 if report["verdict"]["decision"] in ("blocked", "refused") else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scan", help="judge a text, request or answer as the proxy would and explain the verdict",
        description="Runs the policy's guards on the input exactly as the proxy would (its parser, "
                    "scopes, guards and pipeline; rate limits left out, no provider called, no "
                    "provider key needed) and prints each finding: guard, rule id and description, "
                    "the matched span in context, points, the model's probability, each slot's "
                    "score against the threshold, the text as PII masking leaves it; then the "
                    "verdict and the message a client would read. Exit status: 0 passes, 1 blocked "
                    "or refused, 2 the command failed.")
    p.add_argument("input", nargs="?", metavar="TEXT|-|FILE",
                   help="the text (a request turn, or the answer with --answer); - reads standard "
                        "input; the name of an existing file reads that file")
    p.add_argument("--policy", default=os.environ.get("AIFW_POLICY", "policies/default.yaml"),
                   help="policy file (default: $AIFW_POLICY or policies/default.yaml)")
    p.add_argument("--role", choices=ROLES, default="user", help="role of the text's turn (default user)")
    p.add_argument("--system", help="a system prompt sent with the text (the context rules read it)")
    p.add_argument("--request", metavar="FILE.json",
                   help="a whole request body (chat, completions, responses, embeddings or Anthropic "
                        "messages); the endpoint is told from its shape unless --endpoint says")
    p.add_argument("--answer", action="store_true",
                   help="TEXT is the answer: plain text or a provider response body (JSON); judged "
                        "after the request (--request, or an empty one)")
    p.add_argument("--endpoint", choices=ENDPOINTS, help="the endpoint the request is sent to")
    p.add_argument("--model", help="the request's model (routes and scopes match on it)")
    p.add_argument("--user", help="the caller's user (scopes match on it)")
    p.add_argument("--group", action="append", help="a group of the caller (repeatable; scopes match on them)")
    p.add_argument("--key", help="the caller's key name or fingerprint (scopes match on it)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_scan)
