"""The SSE decoder: any split of the same bytes gives the same events."""

from __future__ import annotations

import pytest

from providers.base import SSEEvent, UpstreamError
from providers.sse import SSEDecoder
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
    for size in (1, 2, 3, 7, 64, 4096):
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


def test_a_line_without_an_end_is_cut_at_the_bound_with_a_clean_upstream_error() -> None:
    """Before: a 100 MB line took 10.5 s of CPU and 316 MB; now the stream fails at the bound."""
    decoder = SSEDecoder(max_event_bytes=1 << 20)
    piece = b"data: " + b"x" * 65530
    with pytest.raises(UpstreamError) as raised:
        for _ in range(100 * 16):  # 100 MB if it were all taken
            decoder.feed(piece)
    assert raised.value.status == 502 and raised.value.code == "upstream_event_too_large"
    assert decoder.bytes_scanned <= (1 << 20) + len(piece)  # it stopped at the bound, not at 100 MB


def test_many_data_lines_adding_up_past_the_bound_are_cut_too() -> None:
    decoder = SSEDecoder(max_event_bytes=10_000)
    with pytest.raises(UpstreamError):
        for _ in range(1000):
            decoder.feed(b"data: " + b"y" * 100 + b"\n")


@pytest.mark.parametrize("piece", [1, 100, 4096])
def test_each_byte_is_scanned_about_once_whatever_the_split(piece: int) -> None:
    """Linear work: the bytes searched for line ends stay about the bytes fed, for one long
    line arriving in small pieces (before: the whole pending line was re-split per piece)."""
    data = b"data: " + b"z" * 500_000 + b"\n\n" + b"data: a\r\n\r\n" * 1000
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for start in range(0, len(data), piece):
        events.extend(decoder.feed(data[start:start + piece]))
    assert len(events) == 1001 and len(events[0].data) == 500_000
    assert decoder.bytes_scanned <= len(data) + len(data) // piece  # a held CR may be looked at twice


def test_an_event_at_the_bound_still_decodes() -> None:
    value = b"v" * 1000
    events = decode_with(SSEDecoder(max_event_bytes=1010), b"data: " + value + b"\n\n", 7)
    assert events == [SSEEvent(None, value)]


def decode_with(decoder: SSEDecoder, data: bytes, size: int) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for i in range(0, len(data), size):
        events.extend(decoder.feed(data[i:i + size]))
    return events + decoder.flush()
