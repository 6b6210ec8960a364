"""Canonical chat answers as Anthropic Messages: a whole `chat.completion` as a Message, and
a stream of `chat.completion.chunk` payloads as the full Messages event sequence.

A stream: `message_start` (the prompt's input tokens: the upstream's where a chunk already
carries usage, else the gateway's count of the prompt, replaced by the upstream's in
`message_delta`), `ping`, then per block `content_block_start`, deltas (`thinking_delta`,
`text_delta`, `input_json_delta`) and `content_block_stop` with indexes counting blocks from
0, then `message_delta` (stop_reason, cumulative usage) and `message_stop`. A failure after
the start is an `event: error`, as the API sends it. A Claude upstream's own stream (a
pass-through) is relayed as it came.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from providers.base import JSON, ApiRequest, Operation, UpstreamError, malformed_answer
from router.tokens import PromptEstimate

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               504: "timeout_error", 529: "overloaded_error"}


def anthropic_status(status: int) -> int:
    """The gateway's 503 (no upstream can take it now) is Anthropic's 529 overloaded."""
    return 529 if status == 503 else status


def error_json(status: int, message: str) -> bytes:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def error_event(error: UpstreamError) -> bytes:
    return b"event: error\ndata: " + error_json(anthropic_status(error.client_status()), error.message) + b"\n\n"


def message_id(chat_id: Any) -> str:
    text = str(chat_id or "")
    return "msg_" + (text.removeprefix("chatcmpl-") or uuid.uuid4().hex[:24])


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40 else 0


def usage_of(usage: Any) -> JSON:
    """OpenAI usage as Anthropic's: cached prompt tokens are counted apart from input_tokens."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt = _count(usage.get("prompt_tokens"))
    return {"input_tokens": max(0, prompt - cached), "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": min(cached, prompt), "output_tokens": _count(usage.get("completion_tokens"))}


def _dict(value: Any) -> JSON:
    """An upstream's object where one is due, else an empty one: a translated answer's shape is
    the upstream's doing, and a part of the wrong shape says nothing."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[JSON]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _arguments(text: Any) -> Any:
    try:
        parsed = orjson.loads(text if isinstance(text, str) and text else "{}")
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _reasoning(message: JSON) -> str:
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) else ""


def message_from_chat(body: bytes, request: ApiRequest) -> bytes:
    try:
        chat = _dict(orjson.loads(body))
    except orjson.JSONDecodeError:
        raise malformed_answer("The upstream") from None
    choice = (_dicts(chat.get("choices")) or [{}])[0]
    message = _dict(choice.get("message"))
    content: list[JSON] = []
    if thinking := _reasoning(message):
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    for text in (message.get("content"), message.get("refusal")):
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
    for call in _dicts(message.get("tool_calls")):
        function = _dict(call.get("function"))
        content.append({"type": "tool_use", "id": str(call.get("id")), "name": str(function.get("name")),
                        "input": _arguments(function.get("arguments"))})
    finish = choice.get("finish_reason")
    return orjson.dumps({
        "id": message_id(chat.get("id")), "type": "message", "role": "assistant", "model": request.public_model,
        "content": content, "stop_reason": _stop_reason(finish),
        "stop_sequence": None, "usage": usage_of(chat.get("usage"))})


def _stop_reason(finish: Any) -> str:
    return STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicStream:
    """One streamed answer in Anthropic's events (see the module's doc)."""

    def __init__(self, request: ApiRequest) -> None:
        self.request = request
        self.passthrough = request.passthrough
        self._started = False
        self._index = -1  # of the open block; -1: none open
        self._open: str | None = None  # "thinking", "text" or "tool:<k>" of the open block
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._stop: str | None = None
        self._usage: JSON | None = None

    def chunks(self, payloads: list[bytes]) -> bytes:
        if self.passthrough:
            return b"".join(payloads)
        out: list[bytes] = []
        for payload in payloads:
            self._chunk(_dict(orjson.loads(payload)), out)
        return b"".join(out)

    def end(self, payloads: list[bytes]) -> bytes:
        if self.passthrough:
            return b"".join(payloads)
        out = [self.chunks(payloads)]
        if not self._started:
            self._start({}, out)
        self._close(out)
        usage = self._usage or {"input_tokens": self._estimate(), "output_tokens": 0}
        out.append(event("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": self._stop or "end_turn", "stop_sequence": None}, "usage": usage}))
        out.append(event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, error: UpstreamError) -> bytes:
        return error_event(error)

    def _estimate(self) -> int:
        return PromptEstimate(Operation.CHAT, self.request.body).value

    def _start(self, chunk: JSON, out: list[bytes]) -> None:
        self._started = True
        usage = usage_of(chunk["usage"]) if isinstance(chunk.get("usage"), dict) else {
            "input_tokens": self._estimate(), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": 0}
        message: JSON = {"id": message_id(chunk.get("id")), "type": "message", "role": "assistant",
                   "model": self.request.public_model, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": usage}
        out.append(event("message_start", {"type": "message_start", "message": message}))
        out.append(event("ping", {"type": "ping"}))

    def _chunk(self, chunk: JSON, out: list[bytes]) -> None:
        if not self._started:
            self._start(chunk, out)
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_of(chunk["usage"])
        for choice in _dicts(chunk.get("choices")):
            delta = _dict(choice.get("delta"))
            if thinking := _reasoning(delta):
                self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                self._delta({"type": "thinking_delta", "thinking": thinking}, out)
            for text in (delta.get("content"), delta.get("refusal")):
                if isinstance(text, str) and text:
                    self._open_block("text", {"type": "text", "text": ""}, out)
                    self._delta({"type": "text_delta", "text": text}, out)
            for call in _dicts(delta.get("tool_calls")):
                self._tool_call(call, out)
            if choice.get("finish_reason"):
                self._stop = _stop_reason(choice["finish_reason"])

    def _tool_call(self, call: JSON, out: list[bytes]) -> None:
        index = call.get("index")
        k = index if isinstance(index, int) else 0
        function = _dict(call.get("function"))
        if k not in self._tools:
            block = {"type": "tool_use", "id": str(call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}"),
                     "name": str(function.get("name") or ""), "input": {}}
            self._open_block(f"tool:{k}", block, out)
            self._tools[k] = self._index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": self._tools[k],
                                                     "delta": {"type": "input_json_delta",
                                                               "partial_json": arguments}}))

    def _open_block(self, kind: str, block: JSON, out: list[bytes]) -> None:
        if self._open == kind:
            return
        self._close(out)
        self._index += 1
        self._open = kind
        out.append(event("content_block_start", {"type": "content_block_start", "index": self._index,
                                                 "content_block": block}))

    def _delta(self, delta: JSON, out: list[bytes]) -> None:
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": self._index,
                                                 "delta": delta}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(event("content_block_stop", {"type": "content_block_stop", "index": self._index}))
            self._open = None
