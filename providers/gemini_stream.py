"""Gemini -> OpenAI: what `generateContent` answers, whole or streamed, embeddings and errors.

Pure functions over parsed Gemini JSON; `GeminiStreamTranslator` turns one SSE event
at a time into OpenAI `chat.completion.chunk` payloads. Gemini has no tool-call ids,
so every `functionCall` part gets a fresh `call_<hex>` id here; the request side finds
the function's name again from the assistant message that carried that id.

A prompt Gemini blocks (`promptFeedback.blockReason`, no candidates) becomes a 400 with
code `content_filter`, whole or streamed: that is what Azure OpenAI, the OpenAI-family
service clients already know, answers for a filtered prompt, and as a 4xx it is
neither retried nor failed over (another attempt would be blocked the same way).
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import struct
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import (
    JSON,
    ApiRequest,
    CarriedState,
    SSEEvent,
    StreamState,
    UpstreamError,
    Usage,
    dumps,
    retry_after_seconds,
    retry_delay,
    turn_key,
)
from providers.gemini_reasoning import TurnRecorder
from providers.untrusted import (
    MAX_TOKEN_COUNT,
    OutOfRange,
    embedding_length,
    error_message,
    generic_error_message,
    index,
    logprob,
    token_count,
    usage_or_missing,
    whole,
)

_CONTENT_FILTER = {
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
    "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
}  # fmt: skip


def gemini_finish_reason_to_finish_reason(reason: str, called_function: bool) -> str:
    """STOP: stop (tool_calls when a function was called); MAX_TOKENS: length;
    the safety family: content_filter; anything else (OTHER, LANGUAGE,
    MALFORMED_FUNCTION_CALL, ...): stop."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER:
        return "content_filter"
    return "tool_calls" if called_function else "stop"


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def usage_from_gemini(meta: Any) -> Usage | None:
    """Thinking tokens are billed as output, so they count as completion tokens.
    Absent or out of range: None, and the tokens are counted by the gateway instead."""
    usage = usage_or_missing(meta, ("promptTokenCount",), ("candidatesTokenCount", "thoughtsTokenCount"),
                             "promptTokenCount")
    if usage.estimated:
        return None
    thoughts, cached = _detail(meta, "thoughtsTokenCount"), _detail(meta, "cachedContentTokenCount")
    if thoughts is None or cached is None or cached > usage.prompt_tokens:
        return None
    # promptTokenCount includes the cached content (ai.google.dev, "Context caching").
    return dataclasses.replace(usage, reasoning_tokens=thoughts, cached_tokens=cached)


def _detail(meta: JSON, name: str) -> int | None:
    try:
        return token_count(meta, name)
    except OutOfRange:
        return None


def usage_to_openai(usage: Usage, meta: JSON | None) -> JSON:
    out = usage.to_openai()
    if meta is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
        out["completion_tokens_details"] = {"reasoning_tokens": _detail(meta, "thoughtsTokenCount") or 0}
    return out


def candidate_to_message_parts(candidate: JSON, recorder: TurnRecorder | None = None
                               ) -> tuple[str | None, list[JSON], str]:
    """A candidate's text (None when there is none), its function calls as OpenAI tool
    calls with freshly minted ids, and its thought summaries (`thought: true` parts).
    The recorder, if any, keeps the signatures and Gemini's call ids for the next turn."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    parts = (candidate.get("content") or {}).get("parts") or []
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("thought") is True:
            thoughts.append(str(part.get("text") or ""))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
            if recorder is not None:
                recorder.text(part)
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            arguments = dumps(call.get("args") or {}).decode()
            call_id = new_tool_call_id()
            if recorder is not None:
                recorder.call(call_id, part)
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": call.get("name", ""), "arguments": arguments}})  # fmt: skip
    return ("".join(texts) if texts else None), calls, "".join(thoughts)


def keep_turn(recorder: TurnRecorder, carried: CarriedState | None) -> None:
    state = recorder.state()
    key = turn_key(recorder.message())
    if carried is not None and state is not None and key:
        carried.seen[key] = state


def logprobs_to_openai(result: Any) -> JSON | None:
    """`logprobsResult {chosenCandidates[], topCandidates[{candidates[]}]}` (one entry a
    decoding step) as OpenAI's `{content: [{token, logprob, bytes, top_logprobs}]}`."""
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for step, chosen in enumerate(result.get("chosenCandidates") or []):
        top = tops[step].get("candidates") if step < len(tops) and isinstance(tops[step], dict) else None
        content.append({**_token_logprob(chosen), "top_logprobs": [_token_logprob(t) for t in top or []]})
    return {"content": content, "refusal": None}


def _token_logprob(candidate: Any) -> JSON:
    token = str(candidate.get("token", "")) if isinstance(candidate, dict) else ""
    value = logprob(candidate.get("logProbability", 0.0)) if isinstance(candidate, dict) else 0.0
    return {"token": token, "logprob": value, "bytes": list(token.encode())}


def blocked_prompt_error(feedback: JSON) -> UpstreamError:
    reason = feedback.get("blockReason", "BLOCKED")
    return UpstreamError(
        400,
        f"The prompt was blocked by Gemini's content filter (blockReason: {reason}).",
        type="invalid_request_error",
        code="content_filter",
        retryable=False,
    )


def response_to_openai(gemini: JSON, public_model: str, chat_id: str, created: int,
                       carried: CarriedState | None = None) -> tuple[JSON, Usage | None]:
    """A whole GenerateContentResponse as an OpenAI `chat.completion` and its usage."""
    candidates = gemini.get("candidates") or []
    feedback = gemini.get("promptFeedback") or {}
    if not candidates and feedback.get("blockReason"):
        raise blocked_prompt_error(feedback)
    choices: list[JSON] = []
    for position, candidate in enumerate(candidates):
        recorder = TurnRecorder() if position == 0 else None
        text, calls, thoughts = candidate_to_message_parts(candidate, recorder)
        message: JSON = {"role": "assistant", "content": text, "refusal": None}
        if thoughts:
            message["reasoning_content"] = thoughts
        if calls:
            message["tool_calls"] = calls
        if recorder is not None:
            keep_turn(recorder, carried)
        reason = gemini_finish_reason_to_finish_reason(candidate.get("finishReason") or "STOP", bool(calls))
        choices.append(
            {
                "index": index(candidate.get("index"), position),
                "message": message,
                "logprobs": logprobs_to_openai(candidate.get("logprobsResult")),
                "finish_reason": reason,
            }
        )
    choices.sort(key=lambda choice: choice["index"])
    meta = gemini.get("usageMetadata")
    usage = usage_from_gemini(meta)
    body: JSON = {"id": chat_id, "object": "chat.completion", "created": created, "model": public_model,
                  "choices": choices}  # fmt: skip
    if usage is not None:
        body["usage"] = usage_to_openai(usage, meta)
    return body, usage


class GeminiStreamTranslator:
    """One Gemini SSE event (a whole GenerateContentResponse holding only new parts) in,
    OpenAI chunk payloads out. The role goes with each choice's first chunk, each
    functionCall part becomes one whole tool-call delta with its own ordinal index, the
    finish reason comes in a chunk of its own, and the latest usageMetadata wins."""

    def __init__(self, state: StreamState, carried: CarriedState | None = None) -> None:
        self.state = state
        self._carried = carried
        self._recorder = TurnRecorder()  # the first candidate's signatures and call ids
        self._started: set[int] = set()
        self._finished: set[int] = set()
        self._tool_calls: dict[int, int] = {}
        self._meta: JSON | None = None

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data.strip()
        if not data:
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(502, "Gemini sent a stream event that is not JSON", retryable=False) from None
        if not isinstance(payload, dict):
            raise UpstreamError(502, "Gemini sent a stream event that is not a JSON object", retryable=False)
        if isinstance(payload.get("error"), dict):
            raise error_from_gemini(0, payload["error"], {})
        if isinstance(payload.get("usageMetadata"), dict):
            self._meta = payload["usageMetadata"]
            self.state.usage = usage_from_gemini(self._meta)
        candidates = payload.get("candidates") or []
        feedback = payload.get("promptFeedback") or {}
        if not candidates and feedback.get("blockReason"):
            raise blocked_prompt_error(feedback)
        chunks: list[bytes] = []
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                chunks.extend(self._candidate(index(candidate.get("index"), position), candidate))
        return chunks

    def finish(self) -> list[bytes]:
        if not self._finished:
            raise UpstreamError(502, "The Gemini stream ended before any finishReason", retryable=False)
        # Without a usage the relay counts, and sends the usage chunk itself (one layer estimates).
        if not self.state.include_usage or self.state.usage is None:
            return []
        usage = usage_to_openai(self.state.usage, self._meta)
        return [self._chunk([], usage)]

    def _candidate(self, index: int, candidate: JSON) -> list[bytes]:
        text, calls, thoughts = candidate_to_message_parts(candidate, self._recorder if index == 0 else None)
        delta: JSON = {}
        if index not in self._started:
            self._started.add(index)
            delta["role"] = "assistant"
        if thoughts:
            delta["reasoning_content"] = thoughts
            self.state.reasoning_chars += len(thoughts)
        if text:
            delta["content"] = text
            self.state.completion_chars += len(text)
        if calls:
            first = self._tool_calls.get(index, 0)
            delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(calls)]
            self._tool_calls[index] = first + len(calls)
        logprobs = logprobs_to_openai(candidate.get("logprobsResult"))
        chunks = [self._chunk([_choice(index, delta, None, logprobs)])] if delta else []
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            finish = gemini_finish_reason_to_finish_reason(reason, self._tool_calls.get(index, 0) > 0)
            chunks.append(self._chunk([_choice(index, {}, finish)]))
            self._finished.add(index)
            if index == 0:
                keep_turn(self._recorder, self._carried)
            if index == 0 or self.state.finish_reason is None:
                self.state.finish_reason = finish
            self.state.done = self._finished >= self._started
        return chunks

    def _chunk(self, choices: list[JSON], usage: JSON | None = None) -> bytes:
        chunk: JSON = {"id": self.state.id, "object": "chat.completion.chunk", "created": self.state.created,
                       "model": self.state.public_model, "choices": choices}  # fmt: skip
        if usage is not None:
            chunk["usage"] = usage
        return dumps(chunk)


def _choice(index: int, delta: JSON, finish_reason: str | None, logprobs: JSON | None = None) -> JSON:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


# --- embeddings ----------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Google's rule of thumb: a token is about four characters (at least one a text)."""
    return max(1, (len(text) + 3) // 4)


def embeddings_from_gemini(payload: JSON, texts: list[str], request: ApiRequest) -> tuple[JSON, Usage]:
    """`{embeddings: [{values}]}` (Gemini API) or `{predictions: [{embeddings: {values,
    statistics}}]}` (Vertex AI) as an OpenAI list. The Gemini API reports no token
    count, so usage is estimated from the input text and marked so; Vertex AI's
    per-instance `statistics.token_count` is used where every instance has one."""
    vectors: list[Any]
    counts: list[Any] = []
    if "predictions" in payload:
        embeddings = [(p or {}).get("embeddings") or {} for p in payload["predictions"]]
        vectors = [e.get("values") for e in embeddings]
        counts = [(e.get("statistics") or {}).get("token_count") for e in embeddings]
    else:
        vectors = [(e or {}).get("values") for e in payload.get("embeddings") or []]
    if len(vectors) != len(texts) or not all(isinstance(v, list) for v in vectors):
        raise UpstreamError(502, "Gemini answered a different number of embeddings than inputs", retryable=False)
    if request.body.get("dimensions"):
        vectors = [_unit(v) for v in vectors]
    as_base64 = request.body.get("encoding_format") == "base64"
    data = []
    for i, vector in enumerate(vectors):
        embedding_length(vector)
        packed = _float32(vector)  # also the check that every value is a number a float32 holds
        data.append({"object": "embedding", "index": i,
                     "embedding": base64.b64encode(packed).decode() if as_base64 else vector})
    if counts and all(c is not None for c in counts):
        usage = Usage(prompt_tokens=sum(whole(c, MAX_TOKEN_COUNT, "token_count") for c in counts))
    else:
        usage = Usage(prompt_tokens=sum(estimate_tokens(t) for t in texts), estimated=True)
    body = {"object": "list", "data": data, "model": request.public_model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens}}  # fmt: skip
    return body, usage


def _float32(values: list[Any]) -> bytes:
    try:
        return struct.pack(f"<{len(values)}f", *values)
    except (struct.error, OverflowError):
        raise OutOfRange("an embedding holds a value that is not a float32") from None


def _unit(values: list[Any]) -> list[float]:
    """Google: only the full-size gemini-embedding-001 vector comes normalised; "for other
    dimensions, including 768 and 1536, you need to normalize the embeddings" (Gemini API
    embeddings guide, "Ensuring quality for smaller dimensions"). A unit vector is unchanged."""
    floats = [float(v) for v in values]
    norm = math.sqrt(sum(v * v for v in floats))
    return [v / norm for v in floats] if norm > 0 else floats


def _float32_base64(values: list[float]) -> str:
    return base64.b64encode(_float32(values)).decode()


# --- errors --------------------------------------------------------------------------

# Google RPC status -> (HTTP status, OpenAI error type, OpenAI error code).
_RPC_STATUS: dict[str, tuple[int, str, str | None]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error", None),
    "FAILED_PRECONDITION": (400, "invalid_request_error", "failed_precondition"),
    "OUT_OF_RANGE": (400, "invalid_request_error", None),
    "UNAUTHENTICATED": (401, "authentication_error", "invalid_api_key"),
    "PERMISSION_DENIED": (403, "permission_error", None),
    "NOT_FOUND": (404, "invalid_request_error", "not_found"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error", "rate_limit_exceeded"),
    "CANCELLED": (499, "invalid_request_error", "cancelled"),
    "INTERNAL": (500, "server_error", None),
    "UNAVAILABLE": (503, "server_error", "overloaded"),
    "DEADLINE_EXCEEDED": (504, "server_error", "timeout"),
}
_CONTEXT_WINDOW = re.compile(r"input token count.*exceed|exceeds the maximum number of tokens", re.I | re.S)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def error_from_gemini(http_status: int, error: JSON, headers: Mapping[str, str]) -> UpstreamError:
    """Gemini's `{code, message, status, details}` as one UpstreamError. `http_status` is
    0 for an error that came inside a stream (then the body's own code counts)."""
    rpc_status = str(error.get("status") or "")
    mapped = _RPC_STATUS.get(rpc_status)
    body_code = error.get("code")
    code_in_body = body_code if isinstance(body_code, int) and 400 <= body_code <= 599 else 0
    status = http_status or code_in_body or (mapped[0] if mapped else 502)
    error_type, code = (mapped[1], mapped[2]) if mapped else _type_for_status(status)
    given = error.get("message")
    raw_message: str = given if isinstance(given, str) else ""
    message = error_message(raw_message, status)
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    retry_after = retry_after_seconds(headers)
    context_window = False
    if any(d.get("reason") == "API_KEY_INVALID" for d in details) or "API key not valid" in raw_message:
        status, error_type, code = 401, "authentication_error", "invalid_api_key"
    elif rpc_status == "NOT_FOUND" and "models/" in raw_message:
        code = "model_not_found"
    elif _CONTEXT_WINDOW.search(raw_message):
        error_type, code, context_window = "invalid_request_error", "context_length_exceeded", True
    if retry_after is None:
        retry_after = _retry_info_delay(details)
    return UpstreamError(
        status,
        message,
        type=error_type,
        code=code,
        retryable=True if status == 429 else None,
        retry_after=retry_after,
        context_window=context_window,
    )


def error_from_body(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        payload = payload[0]  # the JSON-array stream form wraps the error in a list
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return error_from_gemini(status, payload["error"], headers)
    error_type, code = _type_for_status(status)  # not Google's shape (HTML, text): nothing of the body is relayed
    return UpstreamError(
        status,
        f"Gemini: {generic_error_message(status)}",
        type=error_type,
        code=code,
        retry_after=retry_after_seconds(headers),
    )


def _type_for_status(status: int) -> tuple[str, str | None]:
    if status == 429:
        return "rate_limit_error", "rate_limit_exceeded"
    if status in (401, 403):
        return ("authentication_error" if status == 401 else "permission_error"), None
    return ("server_error" if status >= 500 or status < 400 else "invalid_request_error"), None


def _retry_info_delay(details: list[JSON]) -> float | None:
    """`google.rpc.RetryInfo {retryDelay: "38s"}` in seconds."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return retry_delay(match.group(1))
    return None
