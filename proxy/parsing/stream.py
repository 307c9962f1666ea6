"""Streamed answers: SSE events in, SSE events out, guards applied to the text deltas.

For each event the processor finds the text deltas it carries (per choice and channel), passes
them through the response guards' ``on_chunk`` hooks in onion order, writes the result back and
re-serialises only events that changed: one event out per event in. Text a guard holds back is
flushed through ``on_end`` just before the event that closes its stream, as a synthesised delta
of the same dialect, so clients see ordinary deltas; a verdict in that flush ends the stream
like one mid-stream. Usage reported in the stream is copied to ``ex.usage``.
"""
from __future__ import annotations

from typing import Any, Callable

import orjson

from ..exchange import Exchange
from ..guards.base import StreamText, stream_guards
from ..verdict import Finding, Verdict
from .response import set_usage
from .sse import Event, encode, parse_block
from .tools import CALL_ITEMS

ChunkRunner = Callable[[Exchange, StreamText, str], "str | Verdict"]
EndRunner = Callable[[Exchange, StreamText], "str | Verdict"]

_ANTHROPIC_REASON = {"content_filter": "refusal", "length": "max_tokens"}
# Bytes that mark the events a passive stream still reads: usage, and the end of the stream.
_OBSERVED = (b'"usage":{', b'"usage": {', b"[DONE]", b"message_start", b"message_stop", b"response.")
# Bytes in every event that starts a tool call, in any dialect ("tool" for tool_calls/tool_use).
_TOOL_MARKERS = (b"tool", b"function_call")
# Named events that end a stream in the Anthropic and Responses dialects.
_END_EVENTS = frozenset({"message_stop", "response.completed", "response.incomplete", "response.failed"})
# Function-call arguments of the Responses API: JSON text, like the other "tool:" channels.
_ARGS = "tool:args"
_RESPONSES_REASON = {"content_filter": "content_filter", "length": "max_output_tokens"}


class StreamStopped(Exception):
    """A guard ended the stream; ``events`` are the closing events to send."""

    def __init__(self, events: list[bytes], verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.events = events
        self.verdict = verdict


class _Stream:
    __slots__ = ("key", "template", "text_out", "closed")

    def __init__(self, key: StreamText, template: Any) -> None:
        self.key = key
        self.template = template      # (event name, object) of the last delta: for synthesis
        # text after guards, kept only for the Responses API, whose done-events repeat it
        self.text_out: list[str] | None = None
        self.closed = False


class StreamProcessor:
    def __init__(self, ex: Exchange, kind: str, on_chunk: ChunkRunner | None,
                 on_end: EndRunner | None) -> None:
        self.ex = ex
        self.kind = kind
        self.on_chunk = on_chunk
        self.on_end = on_end
        self.active = on_chunk is not None or on_end is not None or ex.capture_text
        # Guards that read tool calls only (Guard.tool_calls_only): events that carry no tool
        # call pass without being parsed, so answers without tool calls cost what they did.
        self.tools_only = self.active and not ex.capture_text and ex.scope is not None and all(
            getattr(g, "tool_calls_only", False) for g in (*stream_guards(ex, ex.scope.chunk_guards),
                                                           *stream_guards(ex, ex.scope.end_guards)))
        self.streams: dict[StreamText, _Stream] = {}
        self.meta: dict[str, Any] = {}   # id/model/created (OpenAI), response object (Responses)
        self.done = False                # saw the dialect's end of stream

    # --- entry points -------------------------------------------------------------------
    def process(self, ev: Event) -> list[bytes]:
        if ev.data is None:
            return [ev.raw]          # comments (keep-alives) and empty blocks pass as they are
        if ev.data == b"[DONE]":
            self.done = True
            return self._flush_all() + [ev.raw]
        if ((not self.active or (self.tools_only and not self.ex.tool_streams
                                 and _TOOL_MARKERS[0] not in ev.data and _TOOL_MARKERS[1] not in ev.data))
                and not self._may_carry_usage(ev)):
            if ev.event in _END_EVENTS:
                self.done = True
            return [ev.raw]
        try:
            obj = orjson.loads(ev.data)
        except orjson.JSONDecodeError:
            return [ev.raw]
        if not isinstance(obj, dict):
            return [ev.raw]
        handler = getattr(self, "_" + self.kind, None)
        if handler is None:
            return [ev.raw]
        return handler(ev, obj)

    @property
    def passive(self) -> bool:
        """Nothing in the stream is rewritten or dropped: events can go out before inspection."""
        return not self.active and not self.ex.strip_usage_chunk

    def observe(self, block: bytes) -> None:
        """Passive mode: ``block`` was already forwarded; read usage and the end of the stream,
        parsing only the few events that can carry them."""
        if any(marker in block for marker in _OBSERVED):
            self.process(parse_block(block))

    def finish(self) -> list[bytes]:
        """The upstream ended cleanly: flush whatever is still held back."""
        return self._flush_all()

    def stop(self, verdict: Verdict) -> list[bytes]:
        """Events that end the stream now with ``verdict.finish_reason``."""
        self.done = True
        reason = verdict.finish_reason
        if self.kind in ("chat", "completions"):
            choice = {"index": 0, "finish_reason": reason, "logprobs": None}
            if self.kind == "chat":
                choice["delta"] = {}
            else:
                choice["text"] = ""
            obj = {**self._openai_meta(), "choices": [choice]}
            return [encode(orjson.dumps(obj)), b"data: [DONE]\n\n"]
        if self.kind == "responses":
            resp = dict(self.meta.get("response") or {})
            resp.update(status="incomplete", output=[],
                        incomplete_details={"reason": _RESPONSES_REASON.get(reason, "content_filter")})
            obj = {"type": "response.incomplete", "response": resp,
                   "sequence_number": self.meta.get("seq", 0) + self.meta.get("shift", 0) + 1}
            return [encode(orjson.dumps(obj), "response.incomplete")]
        if self.kind == "messages":
            out = []
            for st in self.streams.values():
                if not st.closed and st.key.channel.startswith(("block:", "tool:")):
                    st.closed = True
                    idx = int(st.key.channel.split(":", 1)[1])
                    out.append(encode(orjson.dumps({"type": "content_block_stop", "index": idx}),
                                      "content_block_stop"))
            delta = {"type": "message_delta",
                     "delta": {"stop_reason": _ANTHROPIC_REASON.get(reason, "refusal"), "stop_sequence": None},
                     "usage": {"output_tokens": self.ex.usage.completion_tokens or 0}}
            out.append(encode(orjson.dumps(delta), "message_delta"))
            out.append(encode(b'{"type":"message_stop"}', "message_stop"))
            return out
        return []

    def error_events(self, message: str, code: str) -> list[bytes]:
        """What a client sees when the upstream dies mid-stream; every SDK raises on it."""
        if self.kind == "messages":
            body = {"type": "error", "error": {"type": "api_error", "message": message}}
            return [encode(orjson.dumps(body), "error")]
        body = {"error": {"message": message, "type": "server_error", "param": None, "code": code}}
        if self.kind == "responses":
            body.update(type="error", code=code, message=message, param=None)
        return [encode(orjson.dumps(body))]

    # --- helpers --------------------------------------------------------------------------
    @staticmethod
    def _may_carry_usage(ev: Event) -> bool:
        data = ev.data
        return (b'"usage":{' in data or b'"usage": {' in data or b"response.created" in data
                or b"message_start" in data)

    def _openai_meta(self) -> dict:
        return {k: self.meta[k] for k in ("id", "object", "created", "model", "system_fingerprint")
                if k in self.meta}

    def _text(self, key: StreamText, text: str, template: tuple) -> str:
        """Run one delta through the guards; returns the text to emit."""
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = _Stream(key, template)
            if self.kind == "responses":
                st.text_out = []
        else:
            st.template = template
        if self.ex.capture_text:
            self.ex.response_text.append(text)
        self.ex.usage.streamed_chars += len(text)
        if self.on_chunk is None:
            return text
        out = self.on_chunk(self.ex, key, text)
        if isinstance(out, Verdict):
            # Held-back text is dropped, not flushed: after a block nothing more of the answer
            # may reach the client.
            raise StreamStopped(self.stop(out), out)
        if st.text_out is not None:
            st.text_out.append(out)
        return out

    def _flush_text(self, key: StreamText) -> str:
        st = self.streams.get(key)
        if st is None or st.closed:
            return ""
        if self.on_end is None:
            st.closed = True
            return ""
        text = self.on_end(self.ex, key)
        if isinstance(text, Verdict):
            # found in the last held text: the stream ends here, its blocks closed by stop()
            raise StreamStopped(self.stop(text), text)
        st.closed = True
        if text and st.text_out is not None:
            st.text_out.append(text)
        return text

    def _flush(self, key: StreamText) -> list[bytes]:
        text = self._flush_text(key)
        return [self._synth(self.streams[key], text)] if text else []

    def _flush_all(self) -> list[bytes]:
        out: list[bytes] = []
        for key in list(self.streams):
            out.extend(self._flush(key))
        return out

    def _flush_choice(self, choice: int) -> list[bytes]:
        out: list[bytes] = []
        for key in list(self.streams):
            if key.choice == choice:
                out.extend(self._flush(key))
        return out

    def _synth(self, st: _Stream, text: str) -> bytes:
        """A delta event carrying ``text`` for stream ``st``, shaped like the last real one."""
        key = st.key
        name, tmpl = st.template
        if self.kind == "chat":
            if key.channel.startswith("tool:"):
                delta = {"tool_calls": [{"index": int(key.channel[5:]), "function": {"arguments": text}}]}
            elif key.channel == "function_call":
                delta = {"function_call": {"arguments": text}}
            else:
                delta = {key.channel: text}
            obj = {**self._openai_meta(), "choices": [
                {"index": key.choice, "delta": delta, "finish_reason": None, "logprobs": None}]}
        elif self.kind == "completions":
            obj = {**self._openai_meta(), "choices": [
                {"index": key.choice, "text": text, "finish_reason": None, "logprobs": None}]}
        elif self.kind == "responses":
            obj = dict(tmpl)
            obj["delta"] = text
            # A synthesised event takes the next number; every later upstream event shifts by one
            # so sequence numbers stay unique and increasing.
            self.meta["shift"] = self.meta.get("shift", 0) + 1
            obj["sequence_number"] = self.meta.get("seq", 0) + self.meta["shift"]
        else:  # messages
            obj = {"type": "content_block_delta", "index": tmpl["index"], "delta": dict(tmpl["delta"])}
            field = "partial_json" if obj["delta"].get("type") == "input_json_delta" else "text"
            obj["delta"][field] = text
        return encode(orjson.dumps(obj), name)

    def _emit(self, ev: Event, obj: dict, changed: bool, before: list[bytes] | None = None) -> list[bytes]:
        out = before or []
        out.append(encode(orjson.dumps(obj), ev.event) if changed else ev.raw)
        return out

    # --- dialects -----------------------------------------------------------------------
    def _openai_chunk(self, ev: Event, obj: dict) -> list[bytes] | None:
        """What chat and legacy completion chunks share: the id/model a synthesised chunk
        repeats, usage, the hidden usage chunk. Returns the output when nothing more is to do."""
        for k in ("id", "object", "created", "model", "system_fingerprint"):
            if k in obj and k not in self.meta:
                self.meta[k] = obj[k]
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self._set_usage(usage)
            if self.ex.strip_usage_chunk and not obj.get("choices"):
                return []   # the usage chunk aifw asked for on the client's behalf
        if not self.active:
            return [ev.raw]
        return None

    def _chat(self, ev: Event, obj: dict) -> list[bytes]:
        done = self._openai_chunk(ev, obj)
        if done is not None:
            return done
        changed = False
        before: list[bytes] = []
        for choice in obj.get("choices") or ():
            idx = choice.get("index", 0)
            delta = choice.get("delta") or {}
            for field in ("content", "refusal"):
                if isinstance(delta.get(field), str):
                    new = self._text(StreamText(idx, field), delta[field], (ev.event, None))
                    if new != delta[field]:
                        delta[field] = new
                        changed = True
            calls = [(StreamText(idx, f"tool:{call.get('index', 0)}"), call.get("function") or {})
                     for call in delta.get("tool_calls") or ()]
            if isinstance(delta.get("function_call"), dict):   # the legacy single call
                calls.append((StreamText(idx, "function_call"), delta["function_call"]))
            for key, fn in calls:
                if isinstance(fn.get("name"), str):
                    self.ex.tool_streams[key] = fn["name"]
                    fn.setdefault("arguments", "")   # the guards see the call start
                if isinstance(fn.get("arguments"), str):
                    new = self._text(key, fn["arguments"], (ev.event, None))
                    if new != fn["arguments"]:
                        fn["arguments"] = new
                        changed = True
            if choice.get("finish_reason"):
                for field in ("content", "refusal"):
                    # the held tail of the answer rides on the closing chunk: one event out per
                    # event in (a chunk may carry text and finish_reason together)
                    if isinstance(delta.get(field), str) or field == "content":
                        tail = self._flush_text(StreamText(idx, field))
                        if tail:
                            delta[field] = (delta.get(field) or "") + tail
                            choice["delta"] = delta
                            changed = True
                before.extend(self._flush_choice(idx))
        return self._emit(ev, obj, changed, before)

    def _completions(self, ev: Event, obj: dict) -> list[bytes]:
        done = self._openai_chunk(ev, obj)
        if done is not None:
            return done
        changed = False
        before: list[bytes] = []
        for choice in obj.get("choices") or ():
            idx = choice.get("index", 0)
            if isinstance(choice.get("text"), str):
                new = self._text(StreamText(idx, "content"), choice["text"], (ev.event, None))
                if new != choice["text"]:
                    choice["text"] = new
                    changed = True
            if choice.get("finish_reason"):
                if isinstance(choice.get("text"), str):
                    tail = self._flush_text(StreamText(idx, "content"))
                    if tail:
                        choice["text"] += tail
                        changed = True
                before.extend(self._flush_choice(idx))
        return self._emit(ev, obj, changed, before)

    def _responses(self, ev: Event, obj: dict) -> list[bytes]:
        etype = obj.get("type", ev.event)
        if isinstance(obj.get("sequence_number"), int):
            self.meta["seq"] = max(self.meta.get("seq", 0), obj["sequence_number"])
        if etype in ("response.created", "response.in_progress") and isinstance(obj.get("response"), dict):
            self.meta["response"] = {k: v for k, v in obj["response"].items() if k != "output"}
        if etype in ("response.completed", "response.incomplete", "response.failed"):
            resp = obj.get("response") or {}
            self._set_usage(resp.get("usage"))
            self.done = True
        if not self.active:
            return [ev.raw]
        if self.meta.get("shift") and isinstance(obj.get("sequence_number"), int):
            obj["sequence_number"] += self.meta["shift"]
            ev = Event(encode(orjson.dumps(obj), ev.event), ev.event, ev.data)
        if etype == "response.output_item.added":
            item = obj.get("item") or {}
            if item.get("type") == "function_call" and isinstance(item.get("name"), str):
                key = StreamText(obj.get("output_index", 0), _ARGS)
                self.ex.tool_streams[key] = item["name"]
                self._text(key, "", (ev.event, obj))   # the guards see the call start
            return [ev.raw]
        if etype in ("response.output_text.delta", "response.refusal.delta",
                     "response.function_call_arguments.delta"):
            chan = (_ARGS if etype.startswith("response.function_call") else
                    f"{'refusal' if 'refusal' in etype else 'block'}:{obj.get('content_index', 0)}")
            key = StreamText(obj.get("output_index", 0), chan)
            text = obj.get("delta")
            if isinstance(text, str):
                new = self._text(key, text, (ev.event, obj))
                if new != text:
                    obj = dict(obj)
                    obj["delta"] = new
                    return [encode(orjson.dumps(obj), ev.event)]
            return [ev.raw]
        # Done events repeat the whole text: replace it with what the client actually got.
        before: list[bytes] = []
        changed = False
        oi = obj.get("output_index", 0)
        if etype in ("response.output_text.done", "response.refusal.done"):
            chan = f"{'refusal' if 'refusal' in etype else 'block'}:{obj.get('content_index', 0)}"
            field = "refusal" if "refusal" in etype else "text"
            before = self._flush(StreamText(oi, chan))
            changed = self._replace(obj, field, StreamText(oi, chan))
        elif etype == "response.function_call_arguments.done":
            before = self._flush(StreamText(oi, _ARGS))
            changed = self._replace(obj, "arguments", StreamText(oi, _ARGS))
        elif etype == "response.content_part.done":
            part = obj.get("part") or {}
            chan = f"{'refusal' if part.get('type') == 'refusal' else 'block'}:{obj.get('content_index', 0)}"
            changed = self._replace(part, "refusal" if part.get("type") == "refusal" else "text", StreamText(oi, chan))
        elif etype == "response.output_item.done":
            before = self._flush_choice(oi)
            changed = self._replace_item(obj.get("item") or {}, oi)
        elif etype in ("response.completed", "response.incomplete", "response.failed"):
            before = self._flush_all()
            for i, item in enumerate((obj.get("response") or {}).get("output") or ()):
                changed = self._replace_item(item, i) or changed
        return self._emit(ev, obj, changed, before)

    def _replace(self, holder: dict, field: str, key: StreamText) -> bool:
        st = self.streams.get(key)
        if st is None or not isinstance(holder.get(field), str):
            return False
        new = "".join(st.text_out)
        if new == holder[field]:
            return False
        holder[field] = new
        return True

    def _replace_item(self, item: dict, oi: int) -> bool:
        changed = False
        if item.get("type") == "function_call":
            changed = self._replace(item, "arguments", StreamText(oi, _ARGS))
        for ci, part in enumerate(item.get("content") or ()):
            if isinstance(part, dict):
                if part.get("type") == "refusal":
                    changed = self._replace(part, "refusal", StreamText(oi, f"refusal:{ci}")) or changed
                else:
                    changed = self._replace(part, "text", StreamText(oi, f"block:{ci}")) or changed
        return changed

    def _messages(self, ev: Event, obj: dict) -> list[bytes]:
        etype = obj.get("type", ev.event)
        if etype == "message_start":
            msg = obj.get("message") or {}
            self._set_usage(msg.get("usage"))
        elif etype == "message_delta":
            self._set_usage(obj.get("usage"))
        elif etype == "message_stop":
            self.done = True
            if self.active:
                return self._flush_all() + [ev.raw]
        if not self.active:
            return [ev.raw]
        if etype == "content_block_start":
            block = obj.get("content_block") or {}
            if block.get("type") in CALL_ITEMS and isinstance(block.get("name"), str):
                key = StreamText(0, f"tool:{obj.get('index', 0)}")
                self.ex.tool_streams[key] = block["name"]
                # the guards see the call start; until this event goes out, a stop must not
                # close a block the client never saw open
                st = self.streams[key] = _Stream(key, (ev.event, obj))
                st.closed = True
                self._text(key, "", (ev.event, obj))
                st.closed = False
            return [ev.raw]
        if etype == "content_block_delta":
            delta = obj.get("delta") or {}
            idx = obj.get("index", 0)
            field = {"text_delta": "text", "input_json_delta": "partial_json"}.get(delta.get("type"))
            if field and isinstance(delta.get(field), str):
                chan = f"{'tool' if field == 'partial_json' else 'block'}:{idx}"
                new = self._text(StreamText(0, chan), delta[field], (ev.event, obj))
                if new != delta[field]:
                    delta[field] = new
                    return [encode(orjson.dumps(obj), ev.event)]
            return [ev.raw]
        if etype == "content_block_stop":
            idx = obj.get("index", 0)
            return self._flush(StreamText(0, f"block:{idx}")) + self._flush(StreamText(0, f"tool:{idx}")) + [ev.raw]
        return [ev.raw]

    def _set_usage(self, usage: Any) -> None:
        set_usage(self.ex, usage)


def record_stop(ex, verdict: Verdict) -> None:
    """A guard cut the stream: the finding it recorded for the verdict stands, so the record
    names the rules once (as the client's message does); a guard that recorded none gets a
    ``cut`` finding."""
    for f in reversed(ex.findings):
        if (f.guard == verdict.guard and f.direction == "response" and f.action in ("blocked", "cut")
                and set(verdict.rule_ids) <= set(f.rule_ids)):
            return
    ex.add_finding(Finding(verdict.guard, verdict.rule_ids, action="cut", direction="response"))
