"""What every provider module offers the router, and the data passed between them.

A provider adapter is built once per configured provider (at table load) and does
no I/O: it turns an OpenAI request into an `UpstreamCall`, an upstream body into an
OpenAI body plus `Usage`, upstream SSE events into OpenAI chunks, and an upstream
failure into one `UpstreamError`. The router does the HTTP around it.
"""

from __future__ import annotations

import enum
import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import orjson

JSON = dict[str, Any]


class Operation(enum.Enum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    TRANSCRIPTION = "transcription"
    RERANK = "rerank"
    TRANSLATION = "translation"  # speech to English text


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class UpstreamError(Exception):
    """An upstream failure in OpenAI's terms. The router decides retries from
    `retryable` and `retry_after` alone, never from which provider it was."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "upstream_error",
        code: str | None = None,
        param: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        context_window: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retryable = status in RETRYABLE_STATUSES if retryable is None else retryable
        self.retry_after = retry_after
        # The prompt did not fit the model: a fallback with a larger window may serve it.
        self.context_window = context_window

    def client_status(self) -> int:
        """What the client sees: the upstream's status where it means something to the
        client, 502 where it is the gateway's own business (auth to the upstream, 529...)."""
        if self.status in (401, 403, 407):
            return 502  # our credentials, not the caller's
        if self.status == 529 or self.status >= 600 or self.status < 400:
            return 503 if self.status == 529 else 502
        return self.status

    def to_openai(self) -> JSON:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # True where the upstream gave no usage and the gateway counted it itself.
    estimated: bool = False
    # Rerank upstreams that bill by search (Cohere) report these instead of tokens.
    search_units: int = 0
    # Of the completion tokens, those spent reasoning (already counted in completion_tokens).
    reasoning_tokens: int = 0
    # Of the prompt tokens, those read from and written to the upstream's prompt cache.
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> JSON:
        out: JSON = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(frozen=True, slots=True)
class InlineImage:
    """An image the router fetched (SSRF-guarded) for a provider that cannot fetch URLs."""

    media_type: str
    data_b64: str


@dataclass(slots=True)
class CarriedState:
    """Opaque provider state of assistant turns, carried across requests by the router.

    Providers need some of what they answered back on the next turn, unchanged (Claude's
    thinking blocks and their signatures, Gemini's thought signatures and function-call
    ids), but OpenAI clients send back an assistant turn as content and tool_calls only.
    The translator puts what it saw into `seen`, by `turn_key` of the answer; the router
    stores it and, on a later request, puts what it finds for that request's assistant
    turns into `given`. Each value names its `protocol`: state of another protocol is
    ignored. The translators stay pure: they never store anything themselves."""

    given: dict[str, JSON] = field(default_factory=dict)
    seen: dict[str, JSON] = field(default_factory=dict)


def turn_key(message: Mapping[str, Any]) -> str | None:
    """What identifies an assistant turn when a client sends it back: its first tool-call
    id (which every client keeps), else a hash of its text; None for an empty turn."""
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls and isinstance(calls[0], dict) and calls[0].get("id"):
        return "call:" + str(calls[0]["id"])[:256]
    text = message_text(message.get("content"))
    if not text:
        return None
    return "text:" + hashlib.sha256(text.encode()).hexdigest()


def message_text(content: Any) -> str:
    """The text of a string content or of a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """An OpenAI request validated at the edge.

    `body` is the client's JSON object unchanged (unknown fields are carried, not
    dropped); the typed fields are what the router itself needs. `public_model` is
    the model id that is answering (the requested one, or a fallback)."""

    operation: Operation
    body: JSON
    public_model: str
    stream: bool = False
    include_usage: bool = False
    # The https image URLs the request refers to (checked by the SSRF guard), and the
    # images the router fetched for this call, by URL (only for adapters that ask).
    image_urls: tuple[str, ...] = ()
    images: Mapping[str, InlineImage] = field(default_factory=dict)
    # multipart (transcriptions): the form fields and the file, passed through.
    form: Sequence[tuple[str, str]] = ()
    file: tuple[str, bytes, str] | None = None  # (filename, content, content_type)
    # The model's output cap from the route table, for protocols that require one.
    max_output_length: int = 0
    # The client's own body in its own protocol (`source_protocol`) where it is not the canonical
    # one; `passthrough` is set for the attempt at an upstream that speaks that protocol itself:
    # the adapter then sends `source` (model rewritten) and answers in that protocol.
    source: JSON | None = None
    source_protocol: str = "openai"
    passthrough: bool = False
    # (param, what) of a part of `source` only an upstream of `source_protocol` can serve (a
    # built-in tool): any other upstream answers a 400 naming it.
    native_only: tuple[str, str] | None = None
    # Opaque state of earlier assistant turns (given) and of this answer (seen).
    carried: CarriedState = field(default_factory=CarriedState)
    # `source` as the client sent it, byte for byte (a pass-through rewrites only the model in it),
    # and the protocol's optional features the client asked for (Anthropic's `anthropic-beta`).
    source_raw: bytes = b""
    source_features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None  # JSON body; None where `multipart` is used
    multipart: bool = False
    fields: tuple[tuple[str, str], ...] = ()  # multipart form fields (the file is ApiRequest.file)


@dataclass(slots=True)
class StreamState:
    """Per-stream state shared by every translator: identity of the chunks, the usage
    seen so far and how the stream ended."""

    public_model: str
    include_usage: bool
    id: str = field(default_factory=lambda: "chatcmpl-" + uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))
    usage: Usage | None = None
    finish_reason: str | None = None
    completion_chars: int = 0  # for estimating usage when the upstream gives none
    reasoning_chars: int = 0  # reasoning text streamed, for estimating its tokens where none are counted
    done: bool = False


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One upstream stream event, whatever framed it (SSE so far; AWS event streams would too)."""

    event: str | None
    data: bytes


class StreamDecoder(Protocol):
    """An upstream stream's framing (SSE, or e.g. AWS event streams): bytes in, events out,
    whatever the chunking."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...

    def flush(self) -> list[SSEEvent]:
        """The body ended: the events still buffered."""
        ...


class StreamTranslator(Protocol):
    state: StreamState

    def feed(self, event: SSEEvent) -> list[bytes]:
        """One upstream event in, zero or more OpenAI chunk payloads (JSON bytes) out.
        Raises UpstreamError for an error event."""
        ...

    def finish(self) -> list[bytes]:
        """The upstream body ended: payloads still owed (e.g. the usage chunk)."""
        ...


class Adapter(Protocol):
    """One configured provider account, speaking one wire protocol."""

    kind: str
    # Whether https image URLs must be fetched by the router and handed over inline.
    inlines_image_urls: bool

    def to_upstream(self, request: ApiRequest, upstream_model: str) -> UpstreamCall: ...

    def from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]: ...

    def stream_translator(self, request: ApiRequest) -> StreamTranslator: ...

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...

    async def refresh_credentials(self) -> None:
        """Fetch credentials that come from a command or a file (Vertex tokens) ahead of
        the first request; the router calls it at start and after each reload."""
        ...


@runtime_checkable
class EmbeddingBatches(Protocol):
    """An adapter whose upstream takes at most so many embedding inputs in one call: the
    router splits larger requests, calls the pieces concurrently and joins the answers."""

    def embedding_batch_size(self, upstream_model: str) -> int: ...


@runtime_checkable
class TokenCounter(Protocol):
    """An adapter whose upstream counts a chat request's prompt tokens itself."""

    def count_tokens_call(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        """The call that counts (raises UpstreamError where the request cannot be counted there)."""
        ...

    def count_of(self, body: bytes) -> int:
        """The count in the upstream's answer (raises UpstreamError for a body of another shape)."""
        ...


def checked_count(value: Any, provider: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**40:
        raise malformed_answer(provider)
    return value


# What walking an upstream body of the wrong shape raises (a list where an object was due...).
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError)


def invalid_param(param: str, message: str) -> UpstreamError:
    """A request the translator cannot express: a 400 naming the parameter, before any upstream call."""
    return UpstreamError(400, message, type="invalid_request_error", param=param, retryable=False)


def malformed_answer(provider: str) -> UpstreamError:
    """An upstream answer that is JSON but not the protocol: the client gets a 502."""
    return UpstreamError(502, f"{provider} answered with a body of an unexpected shape.", code="upstream_malformed",
                         retryable=False)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# An upstream asking for a longer wait than this is not asking anything a client can act on.
MAX_RETRY_AFTER = 3600.0


def retry_delay(value: str) -> float | None:
    """A delay in seconds as an upstream wrote it, or None unless it is a finite number within bounds."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER else None  # also refuses nan and inf


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (OpenAI, Azure) or `retry-after` in seconds; HTTP dates are ignored."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            delay = retry_delay(str(float(ms) / 1000))
        except ValueError:
            delay = None
        if delay is not None:
            return delay
    value = headers.get("retry-after")
    return retry_delay(value) if value else None
