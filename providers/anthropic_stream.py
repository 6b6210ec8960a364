"""Anthropic Messages -> OpenAI, the parts shared by plain and streamed answers:
stop reasons, usage, errors, and the event-by-event stream translator.

The stream translator is sans-IO: it gets parsed SSE events (from `providers.sse`)
and returns `chat.completion.chunk` payloads, one event at a time, never buffering
the answer. Tool calls are numbered among themselves (0, 1, ...) as OpenAI clients
expect, not by Anthropic's content block index (a text block usually comes first).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from providers.anthropic_reasoning import structured_tool_name, thinking_state
from providers.base import (
    JSON,
    SHAPE_ERRORS,
    ApiRequest,
    CarriedState,
    SSEEvent,
    StreamState,
    UpstreamError,
    Usage,
    dumps,
    malformed_answer,
    retry_after_seconds,
    turn_key,
)
from providers.untrusted import OutOfRange, error_message, index, plain_token, token_count, usage_or_missing

STOP_REASON_TO_FINISH_REASON: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn: what came so far is a complete answer
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> (OpenAI error type, status when the HTTP status says nothing).
ERROR_TYPES: dict[str, tuple[str, int]] = {
    "invalid_request_error": ("invalid_request_error", 400),
    "authentication_error": ("authentication_error", 401),
    "billing_error": ("insufficient_quota", 402),
    "permission_error": ("permission_error", 403),
    "not_found_error": ("not_found_error", 404),
    "request_too_large": ("invalid_request_error", 413),
    "rate_limit_error": ("rate_limit_error", 429),
    "api_error": ("server_error", 500),
    "timeout_error": ("server_error", 504),
    "overloaded_error": ("server_error", 529),
}

# The most thinking and answer text kept for the next turn (a store entry is at most 1 MiB anyway).
MAX_KEPT_CHARS = 1 << 20
_CONTEXT_WINDOW_MARKERS = ("prompt is too long", "exceed context limit", "context window")


def anthropic_stop_reason_to_finish_reason(stop_reason: str | None, structured: bool = False) -> str:
    if structured and stop_reason == "tool_use":
        return "stop"  # the forced tool call *is* the structured answer
    return STOP_REASON_TO_FINISH_REASON.get(stop_reason or "end_turn", "stop")


def anthropic_usage_to_usage(usage: Any, reasoning_chars: int = 0) -> Usage:
    """Input includes the cached parts: Anthropic counts them apart, OpenAI does not.
    Absent or out of range: `Usage(estimated=True)`, and the router counts instead.
    Claude counts thinking in output_tokens without a separate figure: the reasoning
    tokens are estimated from the thinking text (about 4 characters a token), at most
    all the output tokens."""
    counted = usage_or_missing(usage, ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"),
                               ("output_tokens",), "input_tokens")
    if counted.estimated:
        return counted
    # Both cache counts are already checked (summed into the prompt tokens above).
    return dataclasses.replace(counted, reasoning_tokens=min(counted.completion_tokens, (reasoning_chars + 3) // 4),
                               cached_tokens=_count(usage, "cache_read_input_tokens"),
                               cache_write_tokens=_count(usage, "cache_creation_input_tokens"))


def _count(usage: Any, name: str) -> int:
    try:
        return token_count(usage, name) if isinstance(usage, Mapping) else 0
    except OutOfRange:
        return 0


def usage_to_openai(usage: Usage) -> JSON:
    out = usage.to_openai()
    out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return out


def error_from_anthropic(
    status: int | None, error: Mapping[str, Any], retry_after: float | None = None
) -> UpstreamError:
    """An Anthropic `error` object (`{type, message}`) as one UpstreamError. `status` is
    None for an error event inside a 200 stream: the type then gives it."""
    # Relayed as the code: a short plain token, never free text.
    anthropic_type = plain_token(error.get("type")) or "api_error"
    raw_message = error.get("message")
    openai_type, type_status = ERROR_TYPES.get(anthropic_type, ("upstream_error", 500))
    status = status or type_status
    lowered = raw_message.lower() if isinstance(raw_message, str) else ""
    context_window = status in (400, 413) and any(marker in lowered for marker in _CONTEXT_WINDOW_MARKERS)
    return UpstreamError(
        status,
        f"anthropic: {error_message(raw_message, status)}",
        type=openai_type,
        code=anthropic_type,
        retry_after=retry_after,
        context_window=context_window,
    )


def parse_anthropic_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """A failed response, whatever its body: Anthropic's `{"type":"error","error":{...}}`,
    Vertex's Google-style `{"error":{"code","message","status"}}`, or not JSON at all."""
    retry_after = retry_after_seconds(headers) if status in (429, 503, 529) else None
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed:  # Vertex sometimes wraps errors in a list
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and "type" in error:
        return error_from_anthropic(status, error, retry_after)
    # Not Anthropic's shape: Google's message where there is one, else nothing of the body (HTML, text).
    message = error.get("message") if isinstance(error, dict) else None
    fallback_type = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "invalid_request_error" if status < 500 else "api_error")
    return error_from_anthropic(status, {"type": fallback_type, "message": message}, retry_after)


class AnthropicStreamTranslator:
    """Anthropic stream events -> OpenAI `chat.completion.chunk` payloads."""

    def __init__(self, state: StreamState, structured_name: str | None = None,
                 carried: CarriedState | None = None) -> None:
        self.state = state
        self._carried = carried
        # Thinking blocks by content index, whole, for the next turn (see anthropic_reasoning),
        # and, once one was seen, what identifies the turn: its first tool-call id or its text.
        self._thinking: dict[int, JSON] = {}
        self._first_call_id: str | None = None
        self._texts: list[str] = []
        self._kept_chars = 0  # what the two above hold: past MAX_KEPT_CHARS the turn's state is given up
        self._gave_up = False
        # response_format json_schema: this tool's input is streamed as content.
        self._structured_name = structured_name
        self._content_json_blocks: set[int] = set()
        self._tool_ordinal_by_block: dict[int, int] = {}
        self._blocks_with_arguments: set[int] = set()
        self._input_usage: Mapping[str, Any] = {}
        self._output_tokens: Any = 0  # as the upstream sent it: checked with the rest of the usage
        self._usage_sent = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(502, "anthropic: stream event is not JSON", type="server_error") from exc
        if not isinstance(data, dict):
            raise UpstreamError(502, "anthropic: stream event is not a JSON object", type="server_error")
        try:
            return self._event(data.get("type") or event.event, data)
        except SHAPE_ERRORS:  # an event of the protocol's name but not of its shape, or a number out of range
            raise malformed_answer("Anthropic") from None

    def _event(self, kind: Any, data: JSON) -> list[bytes]:
        if kind == "message_start":
            return self._message_start(data.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(index(data.get("index"), 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(index(data.get("index"), 0), data.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(index(data.get("index"), 0))
        if kind == "message_delta":
            return self._message_delta(data.get("delta") or {}, data.get("usage") or {})
        if kind == "message_stop":
            self.state.done = True
            return self._usage_chunk()
        if kind == "error":
            raise error_from_anthropic(None, data.get("error") or {})
        return []  # ping, and event types added later

    def finish(self) -> list[bytes]:
        if self.state.finish_reason is None:
            # No stop reason: the answer was cut off. Say so rather than end quietly.
            raise UpstreamError(502, "anthropic: stream ended before the message was complete", type="server_error")
        return self._usage_chunk()

    def _message_start(self, message: Mapping[str, Any]) -> list[bytes]:
        self._input_usage = message.get("usage") or {}
        self._output_tokens = self._input_usage.get("output_tokens")
        self._update_usage()
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: int, block: Mapping[str, Any]) -> list[bytes]:
        if block.get("type") == "text" and block.get("text"):
            return self._text(str(block["text"]))
        if block.get("type") in ("thinking", "redacted_thinking"):
            if self._keeping(len(str(block.get("thinking") or block.get("data") or ""))):
                self._thinking[index] = dict(block)
            return self._reasoning(str(block.get("thinking") or ""))
        if block.get("type") != "tool_use":
            return []  # server-tool blocks have no OpenAI counterpart
        if self._structured_name is not None and block.get("name") == self._structured_name:
            self._content_json_blocks.add(index)
            return []
        ordinal = len(self._tool_ordinal_by_block)
        self._tool_ordinal_by_block[index] = ordinal
        if self._first_call_id is None:
            self._first_call_id = str(block.get("id"))
        name = str(block.get("name") or "")
        self.state.completion_chars += len(name)
        call = {
            "index": ordinal,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: int, delta: Mapping[str, Any]) -> list[bytes]:
        delta_type = delta.get("type")
        if delta_type == "text_delta":
            return self._text(str(delta.get("text") or ""))
        if delta_type == "thinking_delta" and index in self._thinking:
            text = str(delta.get("thinking") or "")
            if self._keeping(len(text)):
                self._thinking[index]["thinking"] = str(self._thinking[index].get("thinking") or "") + text
            return self._reasoning(text)
        if delta_type == "signature_delta" and index in self._thinking:
            self._thinking[index]["signature"] = str(self._thinking[index].get("signature") or "") + str(
                delta.get("signature") or "")
            return []
        if delta_type == "input_json_delta" and index in self._content_json_blocks:
            fragment = str(delta.get("partial_json") or "")
            if fragment:
                self._blocks_with_arguments.add(index)
            return self._text(fragment)
        if delta_type == "input_json_delta" and index in self._tool_ordinal_by_block:
            fragment = str(delta.get("partial_json") or "")
            if not fragment:
                return []
            self.state.completion_chars += len(fragment)
            self._blocks_with_arguments.add(index)
            call = {"index": self._tool_ordinal_by_block[index], "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # citation deltas

    def _block_stop(self, index: int) -> list[bytes]:
        """An empty tool input streams as "" fragments only: it is `{}` to OpenAI clients
        (who parse the arguments), as in a plain answer, never an empty string."""
        if index in self._blocks_with_arguments:
            return []
        self._blocks_with_arguments.add(index)
        if index in self._content_json_blocks:
            return self._text("{}")
        if index not in self._tool_ordinal_by_block:
            return []
        self.state.completion_chars += 2
        call = {"index": self._tool_ordinal_by_block[index], "function": {"arguments": "{}"}}
        return [self._chunk({"tool_calls": [call]})]

    def _text(self, text: str) -> list[bytes]:
        if not text:
            return []
        self.state.completion_chars += len(text)
        if self._thinking and self._keeping(len(text)):  # the text identifies the turn
            self._texts.append(text)
        return [self._chunk({"content": text})]

    def _keeping(self, more: int) -> bool:
        """Whether the turn's state is still kept (a bound on what this translator holds)."""
        self._kept_chars += more
        if self._kept_chars > MAX_KEPT_CHARS:
            self._gave_up = True
            self._thinking.clear()
            self._texts.clear()
        return not self._gave_up

    def _reasoning(self, text: str) -> list[bytes]:
        if not text:
            return []
        self.state.reasoning_chars += len(text)
        return [self._chunk({"reasoning_content": text})]

    def _keep_thinking(self) -> None:
        """Hand the turn's thinking blocks to the router, by the key the client's copy will have."""
        state = thinking_state(self._thinking)
        if self._carried is None or state is None:
            return
        message: JSON = {"content": "".join(self._texts)}
        if self._first_call_id is not None:
            message["tool_calls"] = [{"id": self._first_call_id}]
        key = turn_key(message)
        if key:
            self._carried.seen[key] = state

    def _message_delta(self, delta: Mapping[str, Any], usage: Mapping[str, Any]) -> list[bytes]:
        if usage:
            # Cumulative counts; newer streams repeat the input counts here too.
            self._input_usage = {**self._input_usage, **{k: v for k, v in usage.items() if k != "output_tokens"}}
            self._output_tokens = usage.get("output_tokens") or self._output_tokens
            self._update_usage()
        stop_reason = delta.get("stop_reason")
        if stop_reason is None or self.state.finish_reason is not None:
            return []
        structured = self._structured_name is not None and not self._tool_ordinal_by_block
        self.state.finish_reason = anthropic_stop_reason_to_finish_reason(stop_reason, structured)
        self._keep_thinking()
        return [self._chunk({}, self.state.finish_reason)]

    def _update_usage(self) -> None:
        self.state.usage = anthropic_usage_to_usage({**self._input_usage, "output_tokens": self._output_tokens},
                                                    self.state.reasoning_chars)

    def _usage_chunk(self) -> list[bytes]:
        usage = self.state.usage
        # An estimated usage is the router's to send (router/upstream/relay.py), once it has counted.
        if not self.state.include_usage or self._usage_sent or usage is None or usage.estimated:
            return []
        self._usage_sent = True
        return [dumps(self._envelope([]) | {"usage": usage_to_openai(usage)})]

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return dumps(self._envelope([choice]))

    def _envelope(self, choices: list[JSON]) -> JSON:
        envelope: JSON = {
            "id": self.state.id,
            "object": "chat.completion.chunk",
            "created": self.state.created,
            "model": self.state.public_model,
            "choices": choices,
        }
        if self.state.include_usage:
            envelope["usage"] = None  # as OpenAI: every chunk but the last says null
        return envelope


# --- plain response ------------------------------------------------------------------


def from_anthropic_response(request: ApiRequest, body: bytes) -> tuple[JSON, Usage]:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(502, "anthropic: response is not JSON", type="server_error") from exc
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise UpstreamError(502, "anthropic: response is not a message", type="server_error")
    structured_name = structured_tool_name(request.body)
    out_message, reasoning = _message_of(message["content"], structured_name)
    state = thinking_state({i: b for i, b in enumerate(message["content"]) if isinstance(b, dict)})
    key = turn_key(out_message)
    if state is not None and key:
        request.carried.seen[key] = state
    raw_usage = message.get("usage") or {}
    usage = anthropic_usage_to_usage(raw_usage, len(reasoning))
    structured = structured_name is not None and "tool_calls" not in out_message
    response: JSON = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.public_model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": None,
                "finish_reason": anthropic_stop_reason_to_finish_reason(message.get("stop_reason"), structured),
            }
        ],
    }
    if not usage.estimated:  # absent or out of range: the router counts, and the answer says nothing false
        response["usage"] = usage_to_openai(usage)
    return response, usage


def _message_of(content: list[Any], structured_name: str | None) -> tuple[JSON, str]:
    """The OpenAI message of Claude's content blocks, and the reasoning text in it."""
    texts: list[str] = []
    thinking: list[str] = []
    tool_calls: list[JSON] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "tool_use" and structured_name is not None and block.get("name") == structured_name:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            tool_calls.append({"id": block.get("id"), "type": "function", "function": function})
    out: JSON = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    reasoning = "".join(thinking)
    if reasoning:
        out["reasoning_content"] = reasoning
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out, reasoning
