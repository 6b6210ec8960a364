"""The OpenAI API (chat, completions, embeddings, audio): the canonical form itself, so every
translation is the identity and a stream is `data:` events ending in `data: [DONE]`."""

from __future__ import annotations

import orjson

from providers.base import JSON, ApiRequest, UpstreamError
from router.errors import OPENAI_ERRORS, ErrorShape

DONE = b"data: [DONE]\n\n"


def frame(payloads: list[bytes]) -> bytes:
    return b"".join([b"data: " + p + b"\n\n" for p in payloads])


class OpenAIStream:
    __slots__ = ()

    def chunks(self, payloads: list[bytes]) -> bytes:
        return frame(payloads)

    def end(self, payloads: list[bytes]) -> bytes:
        return frame(payloads) + DONE

    def error(self, error: UpstreamError) -> bytes:
        return b"data: " + orjson.dumps(error.to_openai()) + b"\n\n"


_STREAM = OpenAIStream()  # stateless: one serves every stream


class OpenAIIngress:
    name = "openai"
    protocol = "openai"
    errors: ErrorShape = OPENAI_ERRORS

    def to_canonical(self, body: JSON) -> JSON:
        return body

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        return body

    def client_stream(self, request: ApiRequest) -> OpenAIStream:
        return _STREAM


OPENAI = OpenAIIngress()
