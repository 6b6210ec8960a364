"""The OpenAI protocol family: OpenAI itself, Azure OpenAI, and OpenAI-compatible
servers (vLLM, TGI, TEI, whisper and llava servers).

The flavours differ only in data (path template, auth header, query, parameters to
drop), so one adapter reads a small frozen `Flavour` record. Bodies pass through
unchanged apart from `model` (the upstream's name going out, the public id coming
back) and `stream_options.include_usage` (always asked for, so usage is metered;
the usage chunk is left out of the client's stream when the client did not ask), and
on Azure api-versions older than 2024-12-01-preview, `developer` messages go as `system`
(those versions know no developer role and refuse it).
"""

from __future__ import annotations

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
    retry_after_seconds,
)
from providers.settings import ProviderSettings

_PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETIONS: "/completions",
    Operation.EMBEDDINGS: "/embeddings",
    Operation.TRANSCRIPTION: "/audio/transcriptions",
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
    # The first api-version (a date) that takes the `developer` role; before it, developer
    # messages go as `system` (what they replace). "": every version takes it.
    developer_role_since: str = ""


FLAVOURS: dict[str, Flavour] = {
    "openai": Flavour(url_template="{base}{path}", auth_header="Authorization", auth_prefix="Bearer "),
    "openai-compatible": Flavour(url_template="{base}{path}", auth_header="Authorization", auth_prefix="Bearer "),
    # Azure selects the model by deployment in the path; `api-key`, not a bearer token.
    # Azure's inference spec has the developer role from 2024-12-01-preview on (not in 2024-10-21 GA).
    "azure": Flavour(url_template="{base}/openai/deployments/{model}{path}", auth_header="api-key", auth_prefix="",
                     query="?api-version={api_version}", developer_role_since="2024-12-01"),
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
        url = self.url(request.operation, upstream_model)
        if request.operation in _MULTIPART:
            return UpstreamCall(url, self._auth_headers, None, multipart=True,
                                fields=(("model", upstream_model), *request.form))
        body = dict(request.body)
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
        if request.operation in _MULTIPART:
            return body, _transcription_usage(body)
        data = _load_object(body)
        if not isinstance(data.get("choices", data.get("data")), list):
            raise UpstreamError(502, "the upstream answered with an unexpected body", retryable=False)
        data["model"] = request.public_model
        return dumps(data), _usage(data.get("usage"))

    def stream_translator(self, request: ApiRequest) -> OpenAIStream:
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
        usage = chunk.get("usage")
        if usage:
            state.usage = _usage(usage)
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


def _load_object(body: bytes) -> JSON:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamError(502, "the upstream answered with a body that is not JSON", retryable=False) from None
    if not isinstance(data, dict):
        raise UpstreamError(502, "the upstream answered with an unexpected body", retryable=False)
    return data


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage(estimated=True)
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return Usage(estimated=True)
    return Usage(prompt, completion)


def _transcription_usage(body: bytes) -> Usage:
    """Transcription bills audio, not text; token counts are kept where the upstream gives them."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Usage()
    usage = data.get("usage") if isinstance(data, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("input_tokens"), int):
        return Usage(usage["input_tokens"], int(usage.get("output_tokens") or 0))
    return Usage()


def _error_from_body(status: int, data: Any, retry_after: float | None) -> UpstreamError:
    """OpenAI's `{"error": {...}}`, vLLM's flat `{"object": "error", ...}`, TGI's
    `{"error": "...", "error_type": ...}` and TEI's flat `{"message", "code"}`."""
    err: Any = data.get("error", data) if isinstance(data, dict) else {}
    if isinstance(err, str):
        err = {"message": err, "type": data.get("error_type")}
    if not isinstance(err, dict):
        err = {}
    message = err.get("message") if isinstance(err.get("message"), str) else f"upstream error (HTTP {status})"
    code = err.get("code")
    etype = err.get("type") if isinstance(err.get("type"), str) else "upstream_error"
    # A quota that is used up will not come back by retrying.
    retryable = None if code != "insufficient_quota" and etype != "insufficient_quota" else False
    context_window = code == "context_length_exceeded" or "maximum context length" in message
    return UpstreamError(
        status,
        message,
        type=etype,
        code=str(code) if code is not None else None,
        param=err.get("param") if isinstance(err.get("param"), str) else None,
        retryable=retryable,
        retry_after=retry_after,
        context_window=context_window,
    )


def error_from_upstream(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        data = {"error": {"message": f"upstream error (HTTP {status})" + (f": {text}" if text else "")}}
    error = _error_from_body(status, data, retry_after_seconds(headers))
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        error.retryable = should_retry == "true"
    return error


def _factory(kind: str) -> Any:
    return lambda config: OpenAIAdapter(config, FLAVOURS[kind])


ADAPTERS = {kind: _factory(kind) for kind in FLAVOURS}
