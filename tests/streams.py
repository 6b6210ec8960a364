"""Feeding a recorded upstream body through the SSE decoder and a translator, split into
pieces of any size: what every provider's stream tests share."""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import StreamTranslator
from providers.sse import SSEDecoder


def translate_stream(translator: StreamTranslator, body: bytes, piece: int | None = None) -> list[Any]:
    """The OpenAI chunks (parsed) the translator makes of `body` fed `piece` bytes at a time."""
    decoder = SSEDecoder()
    payloads: list[bytes] = []
    step = piece or len(body)
    for start in range(0, len(body), step):
        for event in decoder.feed(body[start:start + step]):
            payloads.extend(translator.feed(event))
    for event in decoder.flush():
        payloads.extend(translator.feed(event))
    payloads.extend(translator.finish())
    return [orjson.loads(p) for p in payloads]
