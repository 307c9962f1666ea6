"""Text slots: every piece of text in a request or response body, with its role.

The parser turns each supported endpoint's JSON body into a flat list of slots. Guards read
``slot.text`` and may rewrite it with ``slot.set(new)``, which writes straight back into the
parsed body, so the edge re-serialises exactly what the guards decided.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Roles a slot can have. "document" is retrieved/tool-provided content (indirect injection path).
# "definition" is the text of tool and output-schema definitions the request declares.
ROLES = ("system", "developer", "user", "assistant", "tool", "document", "prompt", "input", "definition")

# Kinds say where in the wire format the text sits.
KINDS = (
    "message",              # a whole message content string
    "content_part",         # one text part of a multi-part content array / Anthropic text block
    "tool_result",          # tool / function result content
    "tool_call_arguments",  # JSON arguments of a tool call (string)
    "tool_input",           # Anthropic tool_use input (serialised JSON object)
    "prompt",               # legacy completions prompt
    "input_item",           # Responses API input text
    "instructions",         # Responses API instructions
    "embedding_input",      # embeddings input text
    "tool_definition",      # description and schema text of a declared tool or output schema
    "system",               # Anthropic top-level system prompt
    "output",               # model answer text (response direction)
)


@dataclass(slots=True, eq=False)
class TextSlot:
    role: str
    kind: str
    text: str
    container: Any = None   # the dict or list holding the text in the parsed body
    key: Any = None         # key or index within container
    index: int = 0          # message / choice index, for reporting
    changed: bool = False

    def set(self, new_text: str) -> None:
        """Rewrite this slot's text in place in the parsed body."""
        if new_text == self.text:
            return
        self.text = new_text
        self.changed = True
        if self.container is not None:
            self.container[self.key] = new_text
