"""The guard contract.

A guard is a small object compiled once from its policy section. Hooks have pass-through
defaults; the pipeline skips hooks a guard does not override, so an unused hook costs nothing.

Order: ``on_request`` runs in policy order; ``on_response``, ``on_stream_answer``, ``on_chunk`` and
``on_end`` run in reverse order (onion), so the guard that masks first on the way in restores last on the way out.
``on_complete`` always runs, after the response is finished, blocked or failed.

Faults are exceptions: an exception in a hook fails the exchange closed (503
``guardrail_unavailable``) unless the guard's ``failure_mode`` is ``open``; either way the exchange
is marked as not fully inspected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..exchange import Exchange
from ..policy.sources import SourceRecorder
from ..verdict import Verdict

# Keys every guard section accepts, merged into each guard's schema.
COMMON_PROPERTIES: dict[str, Any] = {
    "enabled": {"type": "boolean", "description": "Turn the guard on or off (default on)."},
    "mode": {"enum": ["enforce", "monitor"], "description": "Overrides the policy mode."},
    "failureMode": {"enum": ["closed", "open"], "description": "Overrides the policy failureMode."},
}


@dataclass(frozen=True, slots=True)
class StreamText:
    """Identifies one text stream inside a streamed answer: choice index and channel.

    ``channel`` is "content", "refusal", or for the Responses / Anthropic formats the
    output/content block index ("block:<n>"); JSON text (chat tool-call arguments, Responses
    function-call arguments, Anthropic ``input_json_delta``) is on a "tool:" channel ("tool:<n>",
    "tool:args").
    """

    choice: int = 0
    channel: str = "content"


class Guard:
    name: str = "guard"
    # Set by the compiler from the guard section, the policy and the scope.
    mode: str = "enforce"          # enforce | monitor
    failure_mode: str = "closed"   # closed | open
    # True when on_chunk/on_end only read tool-call channels: a stream whose guards all say so
    # passes events that carry no tool call without parsing them.
    tool_calls_only: bool = False
    # Judging offline (proxy/offline.py: `aifw scan`, `aifw replay`) leaves out a guard whose
    # verdict depends on the traffic seen before rather than on the exchange itself (limits,
    # budgets): a dry run must neither spend a caller's quota nor be refused for it.
    counts_traffic: bool = False
    # Reads the request or answer body beyond its text slots (declared tools, tool calls): an
    # audit record keeps the text slots only, so `aifw replay` leaves such a guard out.
    reads_body: bool = False
    # True when on_chunk/on_end matter only to exchanges whose on_request left state under the
    # guard's name (ex.state[name]): other streams skip the guard, and may stay passive.
    streams_on_request: bool = False

    async def on_request(self, ex: Exchange) -> Verdict | None:
        """Inspect/rewrite ``ex.request_slots`` / ``ex.body``; return a Verdict to block."""
        return None

    async def on_response(self, ex: Exchange) -> Verdict | None:
        """Whole (non-streamed) response: inspect/rewrite ``ex.response_slots``."""
        return None

    async def on_stream_answer(self, ex: Exchange, data: bytes) -> Verdict | None:
        """A streamed answer held whole before any of it goes out (only for guards that
        override this: the edge then reads the stream to its end first): ``data`` is the decoded
        SSE. A Verdict refuses it as an HTTP error; changes go out through on_chunk / on_end
        when the held events are replayed."""
        return None

    def on_chunk(self, ex: Exchange, stream: StreamText, text: str) -> str | Verdict:
        """One streamed text delta. Return the text to pass on now (may hold some back)."""
        return text

    def on_end(self, ex: Exchange, stream: StreamText) -> str:
        """The stream's text is complete: return any text still held back."""
        return ""

    async def on_complete(self, ex: Exchange) -> None:
        """Always runs once the exchange is over (feeds accounting and the audit record)."""
        return None

    async def close(self) -> None:
        """Release resources when a policy that compiled this guard is retired."""
        return None


@dataclass(frozen=True, slots=True)
class CompileContext:
    """What a guard's compile function may use besides its own section."""

    policy_dir: str                       # directory of the policy file (relative paths)
    services: Any                         # proxy.services.Services: shared runtime backends
    policy_name: str = "default"
    # Files a guard reads while compiling (rule files, term lists, the model) go through
    # ``sources.read``: they join the policy's digest and are watched for hot reload.
    sources: SourceRecorder = field(default_factory=SourceRecorder)
    # The policy's upstreams by name (proxy.policy.compile.Upstream): a guard may make side calls
    # through one (the injection guard's model escalation).
    upstreams: Mapping[str, Any] = field(default_factory=dict)
    # `aifw policy check`: compile what validates the policy, not what only serving needs (a
    # guard may leave such structures to be built when the policy is compiled to serve).
    check: bool = False


@dataclass(frozen=True, slots=True)
class GuardSpec:
    """Registry entry: the guard's policy section schema and its compiler."""

    name: str
    schema: Mapping[str, Any]             # JSON Schema of the guard's own keys (object)
    compile: Callable[[Mapping[str, Any], CompileContext], Guard]
    description: str = ""


def stream_guards(ex: Exchange, guards: tuple[Guard, ...]) -> tuple[Guard, ...]:
    """The guards of ``guards`` that take part in this exchange's stream."""
    if not any(g.streams_on_request for g in guards):
        return guards
    return tuple(g for g in guards if not g.streams_on_request or g.name in ex.state)


def overrides(guard: type[Guard], hook: str) -> bool:
    """True when ``guard`` implements ``hook`` itself (the pipeline skips default hooks)."""
    return getattr(guard, hook) is not getattr(Guard, hook)
