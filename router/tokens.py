"""Token estimates, for reservations before a call and for usage an upstream did not give.

About four characters a token for English text with the common BPE vocabularies;
estimates are marked as such wherever they are metered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from providers.base import JSON, Operation
from providers.rerank_answer import estimate_tokens as estimate_rerank_tokens

CHARS_PER_TOKEN = 4


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    if isinstance(value, dict):
        if value.get("type") == "image_url":
            return 85 * CHARS_PER_TOKEN  # OpenAI's base cost of one low-detail image tile
        return sum(_chars(v) for k, v in value.items() if k in ("content", "text", "arguments", "name",
                                                                "tool_calls", "function"))
    if isinstance(value, int):
        return CHARS_PER_TOKEN  # a token id
    return 0


def from_chars(chars: int) -> int:
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_prompt_tokens(operation: Operation, body: JSON) -> int:
    if operation is Operation.CHAT:
        messages = body.get("messages") or []
        return from_chars(_chars(messages)) + 4 * len(messages) + from_chars(_chars(body.get("tools") or []))
    if operation is Operation.COMPLETIONS:
        return from_chars(_chars(body.get("prompt")))
    if operation is Operation.EMBEDDINGS:
        return from_chars(_chars(body.get("input")))
    if operation is Operation.RERANK:
        return estimate_rerank_tokens(body)
    return 0


class PromptEstimate:
    """The prompt's estimated tokens, worked out only when something needs them (a
    token limit's reservation, or usage an upstream did not give)."""

    __slots__ = ("_operation", "_body", "_value")

    def __init__(self, operation: Operation, body: JSON) -> None:
        self._operation, self._body = operation, body
        self._value: int | None = None

    @property
    def value(self) -> int:
        if self._value is None:
            self._value = estimate_prompt_tokens(self._operation, self._body)
        return self._value


def estimate_completion_tokens(response: bytes) -> int:
    """From an OpenAI answer whose upstream gave no usage: its text and tool arguments."""
    try:
        data = orjson.loads(response)
    except orjson.JSONDecodeError:
        return 0
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        return 0
    return from_chars(sum(_chars(c.get("message") or {"text": c.get("text")}) for c in choices if isinstance(c, dict)))


def requested_output_tokens(body: JSON, default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


# --- a floor under the prompt's tokens, for refusing what certainly does not fit ----------

# No vocabulary has a token longer than this many characters once a run of one repeated
# character (long runs of spaces, dashes or '=' are single tokens in BPE vocabularies) counts
# as one: cl100k_base's longest is 42 ('.translatesAutoresizingMaskIntoConstrain'), o200k_base's
# 26. A floor of characters / this never exceeds the real count, whatever the tokenizer.
MAX_CHARS_PER_TOKEN = 64
_REPEATS = re.compile(r"(.)\1+", re.S)


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("content", "text", "arguments", "tool_calls", "function", "description", "prompt"):
                yield from _texts(item)


def _text_floor(texts: list[str], window: int) -> int:
    if sum(map(len, texts)) // MAX_CHARS_PER_TOKEN <= window:
        return 0  # the common case: fits whatever the text is, nothing more to look at
    return sum(len(_REPEATS.sub(r"\1", text)) for text in texts) // MAX_CHARS_PER_TOKEN


def _prompt_floor(prompt: Any, window: int) -> int:
    if isinstance(prompt, list):
        return sum(isinstance(t, int) for t in prompt)  # token ids: exactly their count
    return _text_floor(list(_texts(prompt)), window)


def exceeds_context(operation: Operation, body: JSON, window: int) -> int:
    """The prompt's token floor when it is certainly more than `window` tokens, else 0: a cheap
    lower bound (characters / MAX_CHARS_PER_TOKEN), so a prompt that fits is never refused."""
    if window <= 0:
        return 0
    if operation is Operation.CHAT:
        floor = _text_floor(list(_texts([body.get("messages"), body.get("tools")])), window)
    elif operation is Operation.COMPLETIONS:
        prompt = body.get("prompt")
        prompts: list[Any] = [prompt]
        if isinstance(prompt, list) and not all(isinstance(t, int) for t in prompt):
            prompts = prompt
        # a batch of prompts: each is a request of its own
        floor = max((_prompt_floor(p, window) for p in prompts), default=0)
    else:
        return 0
    return floor if floor > window else 0
