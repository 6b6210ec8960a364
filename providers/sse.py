"""A sans-IO Server-Sent Events decoder shared by every provider.

Byte boundaries can fall anywhere (inside a UTF-8 sequence, between the CR and LF of
a CRLF); the decoder only ever splits complete lines, so any chunking of the same
bytes yields the same events.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: bytes


class SSEDecoder:
    __slots__ = ("_pending", "_event", "_data")

    def __init__(self) -> None:
        self._pending = b""
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._pending + chunk if self._pending else chunk
        lines = buf.splitlines(keepends=True)
        # An unterminated tail, or a lone CR that may be the first half of CRLF, waits.
        if lines and (not lines[-1].endswith((b"\n", b"\r")) or lines[-1].endswith(b"\r")):
            self._pending = lines.pop()
        else:
            self._pending = b""
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line.rstrip(b"\r\n"), events)
        return events

    def flush(self) -> list[SSEEvent]:
        """End of body: a last event without its blank line still counts."""
        events: list[SSEEvent] = []
        if self._pending:
            self._line(self._pending.rstrip(b"\r\n"), events)
            self._pending = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event, b"\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
