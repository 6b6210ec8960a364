"""The OpenAI protocol family: OpenAI itself, Azure OpenAI, and OpenAI-compatible
servers (vLLM, TGI, TEI, whisper and llava servers; vLLM's `/rerank` too).

The flavours differ only in data (path template, auth header, query, parameters to
drop), so one adapter reads a small frozen `Flavour` record. Bodies pass through
unchanged apart from `model` (the upstream's name going out, the public id coming
back) and `stream_options.include_usage` (always asked for, so usage is metered;
the usage chunk is left out of the client's stream when the client did not ask), and
on Azure api-versions older than 2024-12-01-preview, `developer` messages go as `system`
(those versions know no developer role and refuse it).

`reasoning_effort`, `response_format` and strict tools pass through: the upstream has them
natively. Reasoning models (o-series, GPT-5 but not gpt-5-chat) refuse sampling parameters
other than their defaults; those are a 400 naming the parameter here, before the call
(`providers.model_rules`). `usage.completion_tokens_details.reasoning_tokens` is metered.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from providers.base import (
    JSON,
    ApiRequest,
    Operation,
    SSEEvent,
    StreamState,
    UpstreamCall,
    UpstreamError,
    Usage,
    dumps,
    invalid_param,
    retry_after_seconds,
)
from providers.model_rules import OPENAI_REASONING_REFUSED, is_openai_reasoning_model
from providers.openai_responses import ResponsesPassthroughStream, passthrough_answer, passthrough_body
from providers.rerank_answer import answer_from_results, results_of, token_usage
from providers.settings import ProviderSettings
from providers.untrusted import (
    OutOfRange,
    embedding_length,
    error_message,
    index,
    logprob,
    plain_token,
    token_count,
    usage_or_missing,
    whole,
)

MAX_TEXT_OFFSET = 2**31 - 1  # a character position in prompt and completion

_PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETIONS: "/completions",
    Operation.EMBEDDINGS: "/embeddings",
    Operation.TRANSCRIPTION: "/audio/transcriptions",
    Operation.RERANK: "/rerank",  # vLLM's Jina/Cohere-compatible rerank (`{base}` ends in /v1)
    Operation.TRANSLATION: "/audio/translations",
}
_MULTIPART = frozenset({Operation.TRANSCRIPTION, Operation.TRANSLATION})  # an audio file and form fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Flavour:
    # `{base}` is the provider's base_url, `{model}` the upstream model (Azure: deployment)
    url_template: str
    auth_header: str
    auth_prefix: str
    query: str = ""
    # Parameters this flavour rejects or misreads, dropped before sending.
    drop_params: frozenset[str] = frozenset()
    # The Responses API (`responses_api: true`); Azure names the deployment in the body there.
    responses_template: str = "{base}/responses"
    # The first api-version (a date) that takes the `developer` role; before it, developer
    # messages go as `system` (what they replace). "": every version takes it.
    developer_role_since: str = ""


FLAVOURS: dict[str, Flavour] = {
    "openai": Flavour(url_template="{base}{path}", auth_header="Authorization", auth_prefix="Bearer "),
    "openai-compatible": Flavour(url_template="{base}{path}", auth_header="Authorization", auth_prefix="Bearer "),
    # Azure selects the model by deployment in the path; `api-key`, not a bearer token.
    # Azure's inference spec has the developer role from 2024-12-01-preview on (not in 2024-10-21 GA).
    "azure": Flavour(url_template="{base}/openai/deployments/{model}{path}", auth_header="api-key", auth_prefix="",
                     query="?api-version={api_version}", responses_template="{base}/openai/responses",
                     developer_role_since="2024-12-01"),
}


class OpenAIAdapter:
    inlines_image_urls = False

    def __init__(self, config: ProviderSettings, flavour: Flavour) -> None:
        self.kind = config.kind
        self.config = config
        self.flavour = flavour
        headers = {}
        if config.api_key:
            headers[flavour.auth_header] = flavour.auth_prefix + config.api_key.get()
        self._auth_headers = headers
        self._json_headers = {**headers, "Content-Type": "application/json"}
        self._query = flavour.query.format(api_version=config.api_version or "")
        self._developer_as_system = _predates(config.api_version or "", flavour.developer_role_since)

    def url(self, operation: Operation, upstream_model: str) -> str:
        return self.flavour.url_template.format(
            base=self.config.base_url, model=upstream_model, path=_PATHS[operation]) + self._query

    def to_upstream(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        if request.passthrough and request.source is not None:
            url = self.flavour.responses_template.format(base=self.config.base_url) + self._query
            return UpstreamCall(url, self._json_headers, passthrough_body(request.source, upstream_model))
        url = self.url(request.operation, upstream_model)
        if request.operation in _MULTIPART:
            return UpstreamCall(url, self._auth_headers, None, multipart=True,
                                fields=(("model", upstream_model), *request.form))
        body = dict(request.body)
        if request.operation is Operation.CHAT and is_openai_reasoning_model(upstream_model):
            _refuse_reasoning_sampling(body)
        body["model"] = upstream_model
        if self._developer_as_system and request.operation is Operation.CHAT:
            body["messages"] = _developer_as_system(body.get("messages"))
        if request.stream:
            options = body.get("stream_options")
            body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        for name in self.flavour.drop_params:
            body.pop(name, None)
        return UpstreamCall(url, self._json_headers, dumps(body))

    def from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
        if request.passthrough:
            return passthrough_answer(body, request.public_model)
        if request.operation in _MULTIPART:
            return body, _transcription_usage(body)
        data = _load_object(body)
        if request.operation is Operation.RERANK:
            return answer_from_results(request, results_of(data, "The upstream"), token_usage(data),
                                       data["id"] if isinstance(data.get("id"), str) else None)
        if not isinstance(data.get("choices", data.get("data")), list):
            raise UpstreamError(502, "the upstream answered with an unexpected body", retryable=False)
        _check_numbers(data)
        data["model"] = request.public_model
        usage = _usage(data.get("usage"))
        if usage.estimated:
            data.pop("usage", None)  # absent or out of range: the gateway counts instead, and says nothing false
        return dumps(data), usage

    def stream_translator(self, request: ApiRequest) -> OpenAIStream | ResponsesPassthroughStream:
        if request.passthrough:
            return ResponsesPassthroughStream(request.public_model)
        return OpenAIStream(StreamState(request.public_model, request.include_usage))

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return error_from_upstream(status, headers, body)

    async def refresh_credentials(self) -> None:
        return None  # static keys only


def _predates(api_version: str, since: str) -> bool:
    """Whether a dated api-version (`2024-10-21`, `2024-08-01-preview`) is older than `since`;
    undated ones (`preview`, `latest`, `v1`) are the newest."""
    return bool(since) and re.match(r"\d{4}-\d{2}-\d{2}", api_version) is not None and api_version[:10] < since


def _developer_as_system(messages: Any) -> Any:
    if not isinstance(messages, list):
        return messages
    return [{**m, "role": "system"} if isinstance(m, dict) and m.get("role") == "developer" else m for m in messages]


class OpenAIStream:
    """Chunks pass through as they are; only `model` is rewritten, in place in the
    bytes where the upstream wrote it compactly, so most chunks are not re-serialised."""

    __slots__ = ("state", "_upstream_model", "_public_model_field")

    def __init__(self, state: StreamState) -> None:
        self.state = state
        self._upstream_model: bytes | None = None
        self._public_model_field = b'"model":' + dumps(state.public_model)

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data == b"[DONE]":
            self.state.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamError(502, "the upstream sent a malformed stream event", retryable=False) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(502, "the upstream sent a malformed stream event", retryable=False)
        if "error" in chunk and "choices" not in chunk:
            raise _error_from_body(502, chunk, None)
        state = self.state
        _check_numbers(chunk)
        usage = chunk.get("usage")
        if usage:
            state.usage = _usage(usage)
            if state.usage.estimated:  # out of range: not relayed; the usage chunk at the end is the gateway's
                chunk["usage"] = usage = None
                data = dumps(chunk)
        choices = chunk.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise UpstreamError(502, "the upstream sent a malformed stream event", retryable=False)
        if not choices:
            # The usage chunk (only when the client asked), or Azure's prompt-filter chunk.
            if not (usage and state.include_usage):
                return []
        else:
            for choice in choices:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
                if isinstance(text, str):
                    state.completion_chars += len(text)
                finish = choice.get("finish_reason")
                if isinstance(finish, str) and finish:
                    state.finish_reason = finish
        return [self._with_public_model(chunk, data)]

    def _with_public_model(self, chunk: JSON, data: bytes) -> bytes:
        model = chunk.get("model")
        if model == self.state.public_model:
            return data
        if isinstance(model, str):
            if self._upstream_model is None:
                self._upstream_model = b'"model":' + dumps(model)
            replaced = data.replace(self._upstream_model, self._public_model_field, 1)
            if replaced != data:
                return replaced
        chunk["model"] = self.state.public_model
        return dumps(chunk)

    def finish(self) -> list[bytes]:
        if not self.state.done and self.state.finish_reason is None:
            # Neither [DONE] nor a finish_reason: the stream was cut or was never the protocol.
            raise UpstreamError(502, "The upstream stream ended before it was complete.", code="upstream_truncated",
                                retryable=False)
        return []


def _refuse_reasoning_sampling(body: Mapping[str, Any]) -> None:
    for name, defaults in OPENAI_REASONING_REFUSED.items():
        if name in body and body[name] not in defaults:
            raise invalid_param(name, f"'{name}' is not supported by reasoning models; leave it out "
                                      "(or name it in the model's drop_params)")


def _load_object(body: bytes) -> JSON:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(502, "the upstream answered with a body that is not JSON", retryable=False) from None
    if not isinstance(data, dict):
        raise UpstreamError(502, "the upstream answered with an unexpected body", retryable=False)
    return data


def _usage(raw: Any) -> Usage:
    usage = usage_or_missing(raw, ("prompt_tokens",), ("completion_tokens",), "prompt_tokens")
    if usage.estimated:
        return usage
    reasoning = _detail(raw.get("completion_tokens_details"), "reasoning_tokens")
    cached = _detail(raw.get("prompt_tokens_details"), "cached_tokens")  # part of prompt_tokens
    return dataclasses.replace(usage, reasoning_tokens=min(reasoning, usage.completion_tokens),
                               cached_tokens=min(cached, usage.prompt_tokens))


def _detail(details: Any, name: str) -> int:
    try:
        return token_count(details, name) if isinstance(details, dict) else 0
    except OutOfRange:
        return 0


def _check_numbers(data: JSON) -> None:
    """The positions and logprobs an answer or chunk carries, which are relayed as they are."""
    try:
        for place, item in enumerate(data.get("choices") or data.get("data") or ()):
            if not isinstance(item, dict):
                continue
            index(item.get("index"), place)
            embedding_length(item.get("embedding"))
            delta = item.get("delta")
            for call in (delta.get("tool_calls") or ()) if isinstance(delta, dict) else ():
                if isinstance(call, dict):
                    index(call.get("index"), 0, "tool_calls.index")
            _check_logprobs(item.get("logprobs"))
    except (OutOfRange, TypeError, AttributeError):
        raise UpstreamError(502, "the upstream answered with a number out of range", code="upstream_malformed",
                            retryable=False) from None


def _check_logprobs(logprobs: Any) -> None:
    """Chat's `{content: [{logprob, bytes, top_logprobs}]}` and completions' `{token_logprobs,
    top_logprobs: [{token: logprob}], text_offset}`."""
    if not isinstance(logprobs, dict):
        return
    for entry in logprobs.get("content") or ():
        for token in (entry, *(entry.get("top_logprobs") or ())):
            logprob(token.get("logprob"))
            for byte in token.get("bytes") or ():
                whole(byte, 255, "bytes")
    for value in logprobs.get("token_logprobs") or ():
        if value is not None:  # the first prompt token has none (echo)
            logprob(value)
    for alternatives in logprobs.get("top_logprobs") or ():
        for value in (alternatives or {}).values():
            logprob(value)
    for offset in logprobs.get("text_offset") or ():
        whole(offset, MAX_TEXT_OFFSET, "text_offset")


def _transcription_usage(body: bytes) -> Usage:
    """Transcription bills audio, not text; token counts are kept where the upstream gives them."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    usage = usage_or_missing(data.get("usage") if isinstance(data, dict) else None, ("input_tokens",),
                             ("output_tokens",), "input_tokens")
    return Usage() if usage.estimated else usage


def _error_from_body(status: int, data: Any, retry_after: float | None) -> UpstreamError:
    """OpenAI's `{"error": {...}}`, vLLM's flat `{"object": "error", ...}`, TGI's
    `{"error": "...", "error_type": ...}` and TEI's flat `{"message", "code"}`."""
    err: Any = data.get("error", data) if isinstance(data, dict) else {}
    if isinstance(err, str):
        err = {"message": err, "type": data.get("error_type")}
    if not isinstance(err, dict):
        err = {}
    raw_message = err.get("message")
    message = error_message(raw_message, status)
    code = err.get("code")
    etype = plain_token(err.get("type")) or "upstream_error"
    # A quota that is used up will not come back by retrying.
    retryable = None if code != "insufficient_quota" and etype != "insufficient_quota" else False
    context_window = code == "context_length_exceeded" or (
        isinstance(raw_message, str) and "maximum context length" in raw_message)
    return UpstreamError(
        status,
        message,
        type=etype,
        code=plain_token(code),
        param=plain_token(err.get("param")),
        retryable=retryable,
        retry_after=retry_after,
        context_window=context_window,
    )


def error_from_upstream(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {}  # an HTML page or plain text: only the status is relayed, never the body
    error = _error_from_body(status, data, retry_after_seconds(headers))
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        error.retryable = should_retry == "true"
    return error


def _factory(kind: str) -> Any:
    return lambda config: OpenAIAdapter(config, FLAVOURS[kind])


ADAPTERS = {kind: _factory(kind) for kind in FLAVOURS}
