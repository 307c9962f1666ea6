"""Request bodies of every supported endpoint -> one list of TextSlots.

Roles are told apart so detectors can weigh them: tool results and documents are the indirect
injection path; earlier assistant turns are scanned too. A body whose shape is not recognised
raises ``Unrecognized``: the policy decides whether that blocks or passes uninspected.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

from ..textslots import TextSlot


class Unrecognized(ValueError):
    pass


class Refused(ValueError):
    """A body that must not be forwarded whatever ``unrecognizedBody`` says: a field whose
    value or key two parsers could read differently (400 invalid_request)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


_ROLE = {"system": "system", "developer": "developer", "user": "user", "assistant": "assistant",
         "tool": "tool", "function": "tool"}

# Keys whose string values no model reads as text: ids, enums, signatures, opaque blobs.
_STRUCTURAL = frozenset({"type", "id", "call_id", "tool_call_id", "tool_use_id", "status", "cache_control",
                         "signature", "encrypted_content", "index"})
# Keys holding images, audio and files (base64, URLs, file ids): not inspected, and recorded so.
_MEDIA = frozenset({"image_url", "input_audio", "file", "file_data", "file_id", "file_url", "detail",
                    "format", "audio", "image"})
_PART_SKIP = _STRUCTURAL | _MEDIA | {"source"}
# In tool and output-schema definitions: names the model must echo back as they are, and schema
# keywords whose values are identifiers, not prose. Descriptions, titles, enum values, examples
# are read by the model and become slots.
_DEFINITION_SKIP = _STRUCTURAL | {"name", "required", "$ref", "$schema", "$id", "format", "strict"}
MEDIA_UNINSPECTED = "media content (image, audio or file) not inspected"

# The field names the parser reads. A key that differs from one of them only by case or by
# Unicode compatibility form ("Messages", "meſſages", "ｍessages") is refused: Go's
# encoding/json (Ollama and other Go servers) matches keys case-insensitively, with Unicode
# folding, so the upstream would read text the parser never saw.
_KNOWN = frozenset({"messages", "content", "role", "text", "tool_calls", "function", "arguments",
                    "function_call", "input", "prompt", "instructions", "system", "output", "type",
                    "source", "data", "refusal", "model", "stream", "stream_options", "thinking",
                    "tools", "functions", "response_format"})


def _fold(key: str) -> str:
    return key.lower() if key.isascii() else unicodedata.normalize("NFKC", key).casefold()


def _check_keys(obj: dict) -> None:
    if _KNOWN.issuperset(obj):   # the usual case, one C-level test
        return
    for key in obj:
        if key not in _KNOWN and _fold(key) in _KNOWN:
            raise Refused(f"The key {key[:40]!r} differs from a field the API defines only by case or "
                          "Unicode form; some upstreams would read it as that field.")


def _role(value: Any, index: int) -> str:
    role = _ROLE.get(value) if isinstance(value, str) else None
    if role is None:
        raise Unrecognized(f"message {index} has an unknown role")
    return role


class _Walk:
    """Collects the slots of one body, and what it forwards unread."""

    __slots__ = ("slots", "skipped")

    def __init__(self) -> None:
        self.slots: list[TextSlot] = []
        self.skipped: list[str] = []

    def slot(self, role: str, kind: str, text: str, container: Any, key: Any, index: int) -> None:
        self.slots.append(TextSlot(role, kind, text, container, key, index))

    def leaves(self, value: Any, role: str, kind: str, index: int, skip: frozenset = frozenset()) -> None:
        """Every string inside a JSON value becomes its own rewritable slot, except under the
        keys in ``skip`` (media keys among them are recorded as uninspected)."""
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            return
        for k, v in items:
            if k in skip:
                if v and k in _MEDIA and MEDIA_UNINSPECTED not in self.skipped:
                    self.skipped.append(MEDIA_UNINSPECTED)
                continue
            if isinstance(v, str):
                self.slot(role, kind, v, value, k, index)
            elif isinstance(v, (dict, list)):
                self.leaves(v, role, kind, index, skip)

    def content(self, holder: dict, key: str, role: str, index: int, whole_kind: str) -> None:
        """Message content: a string, or a list of parts (OpenAI) or blocks (Anthropic)."""
        content = holder.get(key)
        if content is None:
            return
        if isinstance(content, str):
            self.slot(role, whole_kind, content, holder, key, index)
            return
        if not isinstance(content, list):
            raise Unrecognized(f"content of message {index} is neither text nor a list of parts")
        part_kind = whole_kind if whole_kind in ("tool_result", "system") else \
            "tool_result" if role == "tool" else "content_part"
        for i, part in enumerate(content):
            if isinstance(part, str):   # some clients send bare strings in the list; servers read them
                self.slot(role, part_kind, part, content, i, index)
            elif isinstance(part, dict):
                self.part(part, role, part_kind, index)
            else:
                raise Unrecognized(f"content part of message {index} is not an object")

    def part(self, part: dict, role: str, kind: str, index: int) -> None:
        """One content part or block. Its type is not trusted to say where the text is
        ("TEXT", "text ", none at all are read leniently by some servers): every string in it
        is read, except ids, enums and media."""
        if len(part) == 2 and part.get("type") == "text" and type(part.get("text")) is str:
            self.slot(role, kind, part["text"], part, "text", index)   # the common shape, fast
            return
        _check_keys(part)
        ptype = part.get("type")
        if ptype == "tool_result":
            self.content(part, "content", "tool", index, "tool_result")
            self.leaves(part, "tool", "tool_result", index, _PART_SKIP | {"content"})
            return
        if ptype in ("tool_use", "server_tool_use"):
            self.leaves(part.get("input"), "assistant", "tool_input", index)
            return
        src = part.get("source")
        if isinstance(src, dict):
            _check_keys(src)
            stype = src.get("type")
            if stype == "text" and isinstance(src.get("data"), str):
                self.slot("document", "content_part", src["data"], src, "data", index)
            elif stype == "content":
                self.content(src, "content", "document", index, "content_part")
            elif MEDIA_UNINSPECTED not in self.skipped:
                self.skipped.append(MEDIA_UNINSPECTED)
        elif src is not None and MEDIA_UNINSPECTED not in self.skipped:
            self.skipped.append(MEDIA_UNINSPECTED)
        self.leaves(part, role, kind, index, _PART_SKIP)

    def arguments(self, holder: Any, index: int) -> None:
        if not isinstance(holder, dict):
            if holder is not None:
                raise Unrecognized(f"a tool call of message {index} is not an object")
            return
        _check_keys(holder)
        args = holder.get("arguments")
        if isinstance(args, str):
            self.slot("assistant", "tool_call_arguments", args, holder, "arguments", index)
        else:   # lenient servers take an object too
            self.leaves(args, "assistant", "tool_call_arguments", index)


def _json_leaves(slots: list[TextSlot], value: Any, role: str, kind: str, index: int) -> None:
    """Every string inside a JSON value (tool inputs) becomes its own rewritable slot."""
    w = _Walk()
    w.slots = slots
    w.leaves(value, role, kind, index)


def _chat(body: dict, w: _Walk) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Unrecognized("'messages' must be a list")
    slots = w.slots
    known = _KNOWN
    roles = _ROLE
    for i, msg in enumerate(messages):
        if type(msg) is not dict:
            if not isinstance(msg, dict):
                raise Unrecognized(f"message {i} is not an object")
        # this loop runs once per message: the usual message (known keys, a string role and
        # content, no tool calls) is read inline, with the helpers' checks in the same order
        if not known.issuperset(msg):
            _check_keys(msg)
        role = msg.get("role")
        role = roles.get(role) if type(role) is str else _role(role, i)
        if role is None:
            raise Unrecognized(f"message {i} has an unknown role")
        content = msg.get("content")
        kind = "tool_result" if role == "tool" else "message"
        if type(content) is str:
            slots.append(TextSlot(role, kind, content, msg, "content", i))
        elif content is not None:
            w.content(msg, "content", role, i, kind)
        if len(msg) == 2 and content is not None:   # role and content: nothing else to read
            continue
        calls = msg.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise Unrecognized(f"'tool_calls' of message {i} must be a list")
        for call in calls or ():
            if not isinstance(call, dict):
                raise Unrecognized(f"a tool call of message {i} is not an object")
            _check_keys(call)
            w.arguments(call.get("function"), i)
        if "function_call" in msg:
            w.arguments(msg["function_call"], i)


def _strings(body: dict, key: str, role: str, kind: str, required: bool, w: _Walk) -> None:
    value = body.get(key)
    if isinstance(value, str):
        w.slot(role, kind, value, body, key, 0)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                w.slot(role, kind, item, value, i, i)
            elif isinstance(item, (int, list)):
                # token ids: cannot be inspected as text
                raise Unrecognized(f"'{key}' holds token ids, which cannot be inspected")
            else:
                raise Unrecognized(f"'{key}[{i}]' is not text")
    elif required or value is not None:
        raise Unrecognized(f"'{key}' is missing or not text")


def _responses(body: dict, w: _Walk) -> None:
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        w.slot("system", "instructions", instructions, body, "instructions", 0)
    elif instructions is not None:
        raise Unrecognized("'instructions' must be text")
    inp = body.get("input")
    if isinstance(inp, str):
        w.slot("user", "input_item", inp, body, "input", 0)
        return
    if inp is None:
        return
    if not isinstance(inp, list):
        raise Unrecognized("'input' must be text or a list of items")
    for i, item in enumerate(inp):
        if isinstance(item, str):   # lenient servers read a bare string as a user message
            w.slot("user", "input_item", item, inp, i, i)
            continue
        if not isinstance(item, dict):
            raise Unrecognized(f"input item {i} is not an object")
        _check_keys(item)
        itype = item.get("type", "message")
        if not isinstance(itype, str):
            raise Unrecognized(f"input item {i} has a type that is not text")
        if itype == "message" or "role" in item:
            w.content(item, "content", _role(item.get("role"), i), i, "input_item")
        elif itype.endswith("_call_output"):   # function, custom tool, shell, computer ... results
            out = item.get("output")
            if isinstance(out, str):
                w.slot("tool", "tool_result", out, item, "output", i)
            elif isinstance(out, list):
                w.content(item, "output", "tool", i, "tool_result")
            else:
                w.leaves(out, "tool", "tool_result", i, _PART_SKIP)
        elif itype == "function_call":
            w.arguments(item, i)
        else:
            # other items (reasoning summaries, custom tool inputs, MCP calls, references):
            # every string but ids, enums and media is read
            w.leaves(item, "input", "input_item", i, _PART_SKIP)


def _messages(body: dict, w: _Walk) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Unrecognized("'messages' must be a list")
    system = body.get("system")
    if isinstance(system, str):
        w.slot("system", "system", system, body, "system", 0)
    elif isinstance(system, list):
        w.content(body, "system", "system", 0, "system")
    elif system is not None:
        raise Unrecognized("'system' must be text or a list of blocks")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise Unrecognized(f"message {i} must be an object with role user or assistant")
        _check_keys(msg)
        w.content(msg, "content", msg["role"], i, "message")


# the top-level keys _definitions reads
_DEFINITION_KEYS = frozenset({"tools", "functions", "response_format", "text", "output_config", "output_format"})


def _definitions(body: dict, w: _Walk) -> None:
    """Tool definitions (OpenAI ``tools``/``functions``, Responses and Anthropic ``tools``) and
    output schemas (``response_format``, Responses ``text.format``, Anthropic
    ``output_config.format`` and the beta's ``output_format``): the model reads their
    descriptions like a system prompt, and a third-party tool's description is a known
    injection route (tool poisoning). They are slots of role "definition", which guards scan
    when a policy lists that role (PII masking reads every slot)."""
    if body.keys().isdisjoint(_DEFINITION_KEYS):   # most bodies define nothing: one C-level test
        return
    for key in ("tools", "functions"):
        tools = body.get(key)
        if isinstance(tools, list):
            for i, tool in enumerate(tools):
                w.leaves(tool, "definition", "tool_definition", i, _DEFINITION_SKIP)
        elif tools is not None:
            raise Unrecognized(f"'{key}' must be a list")
    for holder, key in ((body, "response_format"), (body.get("text"), "format"),
                        (body.get("output_config"), "format"), (body, "output_format")):
        if isinstance(holder, dict):
            w.leaves(holder.get(key), "definition", "tool_definition", 0, _DEFINITION_SKIP)


def parse_request(kind: str, body: Any, skipped: list[str] | None = None) -> list[TextSlot]:
    """The body's text slots. What is forwarded unread (media) is appended to ``skipped``.
    Raises Unrecognized for a shape the parser cannot read, Refused for one that must not pass."""
    if not isinstance(body, dict):
        raise Unrecognized("the body must be a JSON object")
    _check_keys(body)
    w = _Walk()
    if kind == "chat":
        _chat(body, w)
    elif kind == "completions":
        _strings(body, "prompt", "prompt", "prompt", True, w)
    elif kind == "embeddings":
        _strings(body, "input", "user", "embedding_input", True, w)
    elif kind == "responses":
        _responses(body, w)
    elif kind == "messages":
        _messages(body, w)
    if kind in ("chat", "responses", "messages"):
        _definitions(body, w)
    if skipped is not None and w.skipped:
        skipped.extend(r for r in w.skipped if r not in skipped)
    return w.slots


MAX_MODEL_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_fields(body: Any) -> None:
    """Refuse values that the proxy and a lenient upstream would read differently: a ``stream``
    that is not a boolean (pydantic servers stream on "true" or 1), ``stream_options`` that is
    not an object, a ``model`` that is not text."""
    if not isinstance(body, dict):
        return
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise Refused("'stream' must be true or false.", "stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise Refused("'stream_options' must be an object.", "stream_options")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise Refused("'model' must be a string.", "model")


def check_model(model: str | None) -> None:
    """A model (or Azure deployment) name the proxy can record, route and forward as it is."""
    if model is None:
        return
    if len(model) > MAX_MODEL_CHARS:
        raise Refused(f"The model name is longer than {MAX_MODEL_CHARS} characters.", "model")
    if _CONTROL.search(model):
        raise Refused("The model name holds control characters.", "model")


def request_model(endpoint, body: Any) -> str | None:
    if endpoint.azure_deployment:
        return endpoint.azure_deployment
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        return body["model"]
    return None
