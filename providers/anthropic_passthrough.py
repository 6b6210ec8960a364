"""A client's own Anthropic Messages request to a Claude upstream (Anthropic, or Claude on
Vertex), passed through.

Thinking and redacted-thinking blocks carry signatures the API checks; `cache_control`,
documents and server tools mean what they mean only to the API. So the body goes out as
the client sent it, byte for byte, except for the one member the gateway must change:
the top-level `model` value is replaced by the target's upstream model (on Vertex the
`model` member becomes `"anthropic_version":"vertex-2023-10-16"`, the model being in the
URL). That is a splice of the raw bytes at the member's span, found by a scan of the top
level of the (already validated) JSON; nothing is re-serialised. The answer comes back the
same way: a whole answer unchanged, a stream event by event as the upstream framed it, the
usage read from the events on the side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from providers.anthropic_stream import error_from_anthropic
from providers.base import SSEEvent, StreamState, Usage, dumps

_WHITESPACE = b" \t\r\n"


def _skip_ws(raw: bytes, i: int) -> int:
    while i < len(raw) and raw[i] in _WHITESPACE:
        i += 1
    return i


def _string_end(raw: bytes, i: int) -> int:
    """`raw[i]` opens a JSON string: the index just past its closing quote."""
    i += 1
    while True:
        quote = raw.index(b'"', i)
        backslashes = 0
        j = quote - 1
        while raw[j] == 0x5C:  # an escaped quote has an odd run of backslashes before it
            backslashes += 1
            j -= 1
        if backslashes % 2 == 0:
            return quote + 1
        i = quote + 1


def _value_end(raw: bytes, i: int) -> int:
    """`raw[i]` begins a JSON value: the index just past it."""
    opener = raw[i]
    if opener == 0x22:  # "
        return _string_end(raw, i)
    if opener in b"{[":
        depth = 0
        while True:
            c = raw[i]
            if c == 0x22:
                i = _string_end(raw, i)
                continue
            if c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(raw) and raw[i] not in b",}] \t\r\n":  # a number, true, false or null
        i += 1
    return i


def top_level_members(raw: bytes) -> dict[str, tuple[int, int, int]]:
    """The top-level members of a JSON object: name -> (start of the key, start of the
    value, end of the value), as byte offsets. `raw` must be valid JSON (it was parsed)."""
    members: dict[str, tuple[int, int, int]] = {}
    i = _skip_ws(raw, 0)
    if raw[i] != 0x7B:
        raise ValueError("not a JSON object")
    i = _skip_ws(raw, i + 1)
    while raw[i] != 0x7D:
        key_start = i
        key_end = _string_end(raw, i)
        name = orjson.loads(raw[key_start:key_end])
        i = _skip_ws(raw, key_end)  # at the colon
        value_start = _skip_ws(raw, i + 1)
        value_end = _value_end(raw, value_start)
        members[name] = (key_start, value_start, value_end)
        i = _skip_ws(raw, value_end)
        if raw[i] == 0x2C:  # ,
            i = _skip_ws(raw, i + 1)
    return members


def rewrite_model(raw: bytes, upstream_model: str, vertex_version: str | None) -> bytes:
    """The client's body with only the model changed (see the module's doc)."""
    members = top_level_members(raw)
    key_start, value_start, value_end = members["model"]
    if vertex_version is None:
        return raw[:value_start] + dumps(upstream_model) + raw[value_end:]
    version = members.get("anthropic_version")
    if version is not None:  # the client gave one (it should not): the Vertex one replaces it, in place
        _, v_start, v_end = version
        spans = sorted([(key_start, value_end, b""), (v_start, v_end, dumps(vertex_version))], reverse=True)
        out = raw
        for start, end, text in spans:
            if not text:  # drop the model member with the comma that follows it (or, last, precedes it)
                start, end = _member_with_comma(out, start, end)
            out = out[:start] + text + out[end:]
        return out
    return raw[:key_start] + b'"anthropic_version":' + dumps(vertex_version) + raw[value_end:]


def _member_with_comma(raw: bytes, start: int, end: int) -> tuple[int, int]:
    after = _skip_ws(raw, end)
    if raw[after] == 0x2C:
        return start, _skip_ws(raw, after + 1)
    before = start - 1
    while raw[before] in _WHITESPACE:
        before -= 1
    return (before, end) if raw[before] == 0x2C else (start, end)


def allowed_betas(requested: tuple[str, ...], allowlist: tuple[str, ...]) -> str | None:
    """The `anthropic-beta` header to send: the client's features that the provider's
    allowlist names ("*" allows any), in the client's order; None when none is left."""
    kept = list(requested) if "*" in allowlist else [b for b in requested if b in allowlist]
    return ",".join(dict.fromkeys(kept)) or None


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """Anthropic's usage: input counts the cached parts apart (read and written); the
    gateway's prompt tokens are all the input the request was billed for."""
    def count(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40 else 0

    read, written = count("cache_read_input_tokens"), count("cache_creation_input_tokens")
    return Usage(prompt_tokens=count("input_tokens") + read + written, completion_tokens=count("output_tokens"),
                 cached_tokens=read, cache_write_tokens=written)


def answer_usage(body: bytes) -> Usage:
    """The usage of a whole answer, read without touching the body that goes to the client."""
    try:
        parsed = orjson.loads(body)
        usage = parsed.get("usage") if isinstance(parsed, dict) else None
    except orjson.JSONDecodeError:
        usage = None
    if not isinstance(usage, dict):
        return Usage(estimated=True)
    return usage_of(usage)


class PassthroughStream:
    """The upstream's events to the client as they came (each re-framed exactly as the API
    frames it: `event:` and `data:` lines, the data untouched); usage and the end read on
    the side. An `error` event raises, as in the translating path, so that the first events
    can still be retried and a later one ends the stream in the client's protocol."""

    def __init__(self, state: StreamState) -> None:
        self.state = state
        self._input: Mapping[str, Any] = {}

    def feed(self, event: SSEEvent) -> list[bytes]:
        name = event.event
        if name in ("message_start", "message_delta", "error", None):
            self._observe(name, event.data)
        if name == "message_stop":
            self.state.done = True
        head = b"event: " + name.encode() + b"\n" if name is not None else b""
        return [head + b"data: " + event.data + b"\n\n"]

    def _observe(self, name: str | None, data: bytes) -> None:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(parsed, dict):
            return
        kind = parsed.get("type")
        if kind == "error" or name == "error":
            error = parsed.get("error")
            raise error_from_anthropic(None, error if isinstance(error, dict) else {})
        if kind == "message_start" and isinstance(parsed.get("message"), dict):
            usage = parsed["message"].get("usage")
            if isinstance(usage, dict):
                self._input = usage
                self.state.usage = usage_of(usage)
        elif kind == "message_delta" and isinstance(parsed.get("usage"), dict):
            # Cumulative; newer streams repeat the input counts here, older ones give output only.
            self.state.usage = usage_of({**self._input, **parsed["usage"]})
            stop = parsed.get("delta", {}).get("stop_reason") if isinstance(parsed.get("delta"), dict) else None
            self.state.finish_reason = stop if isinstance(stop, str) else self.state.finish_reason

    def finish(self) -> list[bytes]:
        return []

