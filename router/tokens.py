"""Token estimates, for reservations before a call and for usage an upstream did not give.

About four characters a token for English text with the common BPE vocabularies;
estimates are marked as such wherever they are metered.
"""

from __future__ import annotations

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
