"""OpenAI's Responses API passed through to an upstream that serves it (OpenAI, Azure).

The client's Responses body goes out with only `model` rewritten; the answer and every
stream event come back with `model` rewritten to the public id. Usage is read from the
Response object (`input_tokens`, `output_tokens`), in a stream from its terminal event
(`response.completed`, `.incomplete` or `.failed`).
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import JSON, SSEEvent, StreamState, UpstreamError, Usage, dumps

TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
MAX_TOKENS = 1 << 40  # a usage figure beyond this is not a count


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        return None
    return value


def responses_usage(raw: Any) -> Usage:
    """A Response object's `usage`, as the gateway meters it (estimated where absent or malformed)."""
    if not isinstance(raw, dict):
        return Usage(estimated=True)
    prompt, completion = _count(raw.get("input_tokens")), _count(raw.get("output_tokens"))
    if prompt is None or completion is None:
        return Usage(estimated=True)
    details = raw.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return Usage(prompt, completion, cached_tokens=min(cached or 0, prompt))


def passthrough_body(source: JSON, upstream_model: str) -> bytes:
    return dumps({**source, "model": upstream_model})


def _malformed() -> UpstreamError:
    return UpstreamError(502, "the upstream sent a malformed Responses event", code="upstream_malformed",
                         retryable=False)


def passthrough_answer(body: bytes, public_model: str) -> tuple[bytes, Usage]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(502, "the upstream answered with a body that is not JSON", retryable=False) from None
    if not isinstance(data, dict) or data.get("object") != "response":
        raise UpstreamError(502, "the upstream answered with an unexpected body", code="upstream_malformed",
                            retryable=False)
    data["model"] = public_model
    return dumps(data), responses_usage(data.get("usage"))


class ResponsesPassthroughStream:
    """Responses events in, the same events out (model rewritten in the Response objects).
    `include_usage` stays False: the relay must not add a chat usage chunk to this stream."""

    __slots__ = ("state",)

    def __init__(self, public_model: str) -> None:
        self.state = StreamState(public_model, include_usage=False)

    def feed(self, event: SSEEvent) -> list[bytes]:
        if event.data == b"[DONE]":
            self.state.done = True
            return []
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise _malformed() from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise _malformed()
        kind = data["type"]
        if kind == "error":
            raise UpstreamError(502, str(data.get("message") or "the upstream stream failed"),
                                code=str(data["code"]) if data.get("code") else "upstream_error",
                                param=data.get("param") if isinstance(data.get("param"), str) else None,
                                retryable=False)
        response = data.get("response")
        if isinstance(response, dict):
            response["model"] = self.state.public_model
            if kind in TERMINAL_EVENTS:
                self.state.usage = responses_usage(response.get("usage"))
                self.state.done = True
                self.state.finish_reason = "stop" if kind == "response.completed" else kind
        delta = data.get("delta")
        if isinstance(delta, str):
            self.state.completion_chars += len(delta)
        return [dumps(data)]

    def finish(self) -> list[bytes]:
        if not self.state.done:
            raise UpstreamError(502, "The upstream stream ended before it was complete.", code="upstream_truncated",
                                retryable=False)
        return []
