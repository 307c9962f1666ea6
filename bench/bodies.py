"""The three request bodies of `make bench` (issue 14), as chat message lists.

``#REQ#`` in a text is replaced by the load generator with a number unique to each request, so
every request carries one text never seen before (the newest user turn, and in the retrieval
prompt the question and the retrieved passage too), while the rest repeats as it does when a
client re-sends its conversation. A proxy that remembers what it judged gains only where a real
one would.

- ``CHAT_1K``: about 1 KB: a system prompt, two user turns (an e-mail address in the first, a
  phone number in the second, the new one), one assistant turn.
- ``CONVERSATION_20``: about 6 KB: the system prompt and a 20-turn conversation (user and
  assistant alternating) whose last user turn is the new one.
- ``RAG_4K``: about 4 KB: a retrieval-augmented prompt: system prompt, a user question, the
  assistant's tool call and the tool's result (retrieved passages), all new on every request.
"""
from __future__ import annotations

import orjson

UNIQUE = "#REQ#"

SYSTEM = ("You are the customer service assistant of Harbour Mutual, a home and contents insurer. "
          "Answer briefly, cite the policy section you rely on, and ask for missing details "
          "instead of guessing.")

CHAT_1K = (
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": (
        "Hello, I moved from Leeds to York last month and my contents policy still shows the old "
        "address. Please send the updated schedule to maria.jensen@example.org once it is "
        "changed; the new flat has a shared entrance and a locked bike store in the basement.")},
    {"role": "assistant", "content": (
        "Thank you, I can update the address for you. Under section 4.2 your bicycles are covered "
        "in a locked communal store if each one is secured to a fixed point. Could you confirm "
        "the date you moved and whether anyone else now lives with you?")},
    {"role": "user", "content": (
        "I moved on the 3rd and my partner moved in with me. You can call me on 07700 900461 "
        "during the day if you need anything else. Does adding her change the premium, and is "
        "there a fee for the change? (reference #REQ#)")},
)

_TOPICS = (
    "the excess on the buildings cover", "accidental damage to the kitchen worktop",
    "a claim for a stolen bicycle", "the renewal date and the direct debit",
    "cover for a laptop used for work", "water damage from the flat upstairs",
    "temporary accommodation after a flood", "adding a second named driver",
    "the no-claims discount", "what counts as a high-value item",
)


def _turns() -> list[dict]:
    msgs: list[dict] = [{"role": "system", "content": SYSTEM}]
    for i, topic in enumerate(_TOPICS):
        msgs.append({"role": "user", "content": (
            f"Another question, about {topic}: I read the policy booklet twice and I am still not "
            f"sure how it applies to us, since we only moved in recently and some of our things "
            f"are still in storage at my parents' house. What should I do in my case?"
            + (" (reference #REQ#)" if i == len(_TOPICS) - 1 else ""))})
        if i < len(_TOPICS) - 1:
            msgs.append({"role": "assistant", "content": (
                f"About {topic}: section {i + 3}.1 of your policy sets out the conditions. Items in "
                f"storage away from home are covered up to 15% of the contents sum insured, and you "
                f"should keep receipts or photographs. Tell me if you want me to note anything.")})
    return msgs


CONVERSATION_20 = tuple(_turns())

_PASSAGE = (
    "Section 7.{k} (retrieved passage, document HM-POL-2024, request #REQ#): Escape of water "
    "means water leaking suddenly from a fixed installation, a washing machine or a dishwasher. "
    "We pay for the damage the water causes to the buildings and contents, and for the cost of "
    "finding the leak up to 5,000 pounds. We do not pay for the installation itself, for damage "
    "that happened gradually, or for loss while the home was unoccupied for more than 60 days. "
)

RAG_4K = (
    {"role": "system", "content": SYSTEM + " Use only the retrieved passages to answer."},
    {"role": "user", "content": "Is water damage from my washing machine covered, and up to how "
                                "much? (question #REQ#)"},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "search_policy", "arguments": '{"query": "escape of water washing machine"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "".join(
        _PASSAGE.replace("{k}", str(k)) for k in range(1, 9))},
)

BODIES = {"chat1k": CHAT_1K, "conv20": CONVERSATION_20, "rag4k": RAG_4K}


def body(messages, stream: bool = False) -> str:
    doc: dict = {"model": "gpt-4o-mini", "messages": list(messages)}
    if stream:
        doc["stream"] = True
    return orjson.dumps(doc).decode()


def text_bytes(messages) -> int:
    return sum(len((m.get("content") or "").encode()) for m in messages)
