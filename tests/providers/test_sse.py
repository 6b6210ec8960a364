"""The SSE decoder: any split of the same bytes gives the same events."""

from __future__ import annotations

import pytest

from providers.sse import SSEDecoder, SSEEvent
from tests.conftest import sample_path

SAMPLES = ["openai-chat-stream-text-usage.sse", "openai-chat-stream-tool-call.sse",
           "openai-chat-stream-parallel-tool-calls.sse", "azure-openai-chat-stream-text.sse",
           "anthropic-stream-text.sse", "anthropic-stream-tool-use.sse", "gemini-stream-text.sse",
           "gemini-stream-function-call.sse", "gemini-stream-text-after-function-response.sse"]


def decode(data: bytes, size: int) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(data), size):
        events.extend(decoder.feed(data[i:i + size]))
    return events + decoder.flush()


@pytest.mark.parametrize("name", SAMPLES)
def test_recorded_streams_decode_identically_at_any_split(name: str) -> None:
    data = sample_path(name).read_bytes()
    whole = decode(data, len(data))
    assert whole, name
    for size in (1, 7, 64):
        assert decode(data, size) == whole


def test_line_endings_fields_and_comments() -> None:
    data = b": keep-alive\r\nevent: ping\r\ndata: {}\r\n\r\ndata: a\rdata: b\r\rdata:no-space\n\nid: 1\nretry: 5\n\n"
    for size in (1, 2, 3, len(data)):
        assert decode(data, size) == [SSEEvent("ping", b"{}"), SSEEvent(None, b"a\nb"), SSEEvent(None, b"no-space")]


def test_utf8_split_inside_a_character() -> None:
    data = "data: {\"text\": \"Grüße 🌍\"}\n\n".encode()
    assert decode(data, 1) == [SSEEvent(None, "{\"text\": \"Grüße 🌍\"}".encode())]


def test_last_event_without_blank_line_is_flushed() -> None:
    assert decode(b"event: message_stop\ndata: {}", 4) == [SSEEvent("message_stop", b"{}")]
