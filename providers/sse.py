"""A sans-IO Server-Sent Events decoder shared by every provider.

Byte boundaries can fall anywhere (inside a UTF-8 sequence, between the CR and LF of
a CRLF); the decoder only ever splits complete lines, so any chunking of the same
bytes yields the same events.

Linear and bounded: each byte is scanned for a line end once (an unfinished line is
kept in one buffer and only its new bytes are searched), and an event, or a line,
larger than `max_event_bytes` fails the stream with an `UpstreamError` instead of
growing without end.
"""

from __future__ import annotations

import re

from providers.base import SSEEvent, UpstreamError

MAX_EVENT_BYTES = 8 * 1024 * 1024  # far above any real event (a large tool call is kilobytes)
_LINE_END = re.compile(rb"[\r\n]")


class SSEDecoder:
    __slots__ = ("_pending", "_scanned", "_event", "_data", "_data_size", "max_event_bytes", "bytes_scanned")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending = bytearray()  # bytes after the last complete line
        self._scanned = 0  # how much of `_pending` is known to hold no line end
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_size = 0
        self.max_event_bytes = max_event_bytes
        self.bytes_scanned = 0  # the work done: bytes searched for line ends, in all

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        pending = self._pending
        pending += chunk
        events: list[SSEEvent] = []
        start = 0  # the beginning of the current line
        position = self._scanned
        while True:
            match = _LINE_END.search(pending, position)
            if match is None:
                self.bytes_scanned += len(pending) - position
                position = len(pending)
                break
            end = match.start()
            self.bytes_scanned += end + 1 - position
            if pending[end] == 0x0D:  # CR: a lone CR or the first half of CRLF
                if end + 1 == len(pending):
                    position = end  # wait for the next byte to tell which
                    break
                after = end + 2 if pending[end + 1] == 0x0A else end + 1
            else:
                after = end + 1
            self._line(bytes(pending[start:end]), events)
            start = position = after
        del pending[:start]
        self._scanned = position - start
        if len(pending) + self._data_size > self.max_event_bytes:
            self._too_large()
        return events

    def flush(self) -> list[SSEEvent]:
        """End of body: a last event without its blank line still counts."""
        events: list[SSEEvent] = []
        if self._pending:
            self._line(bytes(self._pending.rstrip(b"\r\n")), events)
            self._pending.clear()
            self._scanned = 0
        self._line(b"", events)
        return events

    def _too_large(self) -> None:
        limit = self.max_event_bytes
        self._pending = bytearray()  # the stream is over: free its buffers before raising
        self._data, self._data_size, self._scanned = [], 0, 0
        raise UpstreamError(502, f"The upstream sent a stream event larger than {limit} bytes.",
                            code="upstream_event_too_large", retryable=False)

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event, b"\n".join(self._data)))
            self._event, self._data, self._data_size = None, [], 0
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_bytes:
                self._too_large()
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
