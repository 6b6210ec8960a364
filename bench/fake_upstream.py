"""A fake LLM upstream cheap enough never to be the bottleneck of a benchmark.

One raw asyncio protocol (uvloop when installed) speaking HTTP/1.1 with keep-alive,
answering with cached bytes in each provider's real wire format:

  POST /v1/chat/completions                         OpenAI chat, streamed (SSE) or not
  POST /v1/embeddings                               OpenAI embeddings
  POST /v1/messages                                 Anthropic Messages, streamed or not
  POST /v1beta/models/{m}:generateContent           Gemini
  POST /v1beta/models/{m}:streamGenerateContent     Gemini SSE (?alt=sse, CRLF framing) or JSON array
  POST /v1beta/models/{m}:batchEmbedContents        Gemini embeddings
  GET  /health                                      200

`--latency-ms` delays the first byte of every answer; `--chunk-interval-ms` paces
stream events (0: all at once); `--chunks` is the number of content chunks per stream.

    python bench/fake_upstream.py --port 18001 --chunks 50 --chunk-interval-ms 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import fake_bodies as bodies

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # the upstream also runs on a plain interpreter
    _loads = json.loads

_MAX_HEAD = 64 * 1024
_MAX_BODY = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    latency: float  # seconds before the first byte
    chunk_interval: float  # seconds between stream events
    chunks: int  # content chunks per stream
    completion_words: int  # words in a non-streamed answer
    embedding_dim: int


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: bytes
    body: bytes = b""  # a whole body, or
    events: tuple[bytes, ...] = ()  # stream events, each one HTTP chunk


_STATUS_TEXT = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 413: b"Payload Too Large"}
_JSON = b"application/json"
_SSE = b"text/event-stream"


def _error(status: int, message: str) -> Answer:
    return Answer(status, _JSON, bodies.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                         "param": None, "code": None}}))


def route(method: bytes, target: bytes, body: bytes, s: Settings) -> Answer:
    """What to answer: pure function of the request line and body."""
    path, _, query = target.partition(b"?")
    if method == b"GET":
        return Answer(200, _JSON, b'{"status":"ok"}') if path in (b"/health", b"/") else _error(404, "no such path")
    try:
        req = _loads(body) if body else {}
    except ValueError:
        return _error(400, "body is not JSON")
    if not isinstance(req, dict):
        return _error(400, "body is not a JSON object")
    model = str(req.get("model") or "fake-model")
    stream = bool(req.get("stream"))
    if path.endswith(b"/chat/completions"):
        if stream:
            include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
            return Answer(200, _SSE, events=bodies.openai_chat_events(model, s.chunks, include_usage))
        return Answer(200, _JSON, bodies.openai_chat(model, s.completion_words))
    if path.endswith(b"/embeddings"):
        inputs = req.get("input")
        n = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        as_b64 = req.get("encoding_format") == "base64"
        return Answer(200, _JSON, bodies.openai_embeddings(model, n, s.embedding_dim, as_b64))
    if path.endswith(b"/v1/messages"):
        if stream:
            return Answer(200, _SSE, events=bodies.anthropic_events(model, s.chunks))
        return Answer(200, _JSON, bodies.anthropic_message(model, s.completion_words))
    if b"/models/" in path and b":" in path:
        gemini_model, _, action = path.rsplit(b"/", 1)[1].partition(b":")
        name = gemini_model.decode()
        if action == b"generateContent":
            return Answer(200, _JSON, bodies.gemini_response(name, s.completion_words))
        if action == b"streamGenerateContent":
            if b"alt=sse" in query:
                return Answer(200, _SSE, events=bodies.gemini_events(name, s.chunks))
            return Answer(200, _JSON, events=bodies.gemini_array_events(name, s.chunks))
        if action == b"batchEmbedContents":
            n = len(req.get("requests") or [None])
            return Answer(200, _JSON, bodies.gemini_batch_embeddings(n, s.embedding_dim))
    return _error(404, f"no such path: {target.decode(errors='replace')}")


class UpstreamProtocol(asyncio.Protocol):
    """One connection: requests are answered one at a time, in order (keep-alive)."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.loop = asyncio.get_running_loop()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # an answer is still being written
        self.timer: asyncio.TimerHandle | None = None
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next_request()

    def _next_request(self) -> None:
        request = _take_request(self.buf)
        if request is None:
            if len(self.buf) > _MAX_HEAD + _MAX_BODY and self.transport:
                self.transport.close()
            return
        method, target, body, self.keep_alive = request
        answer = route(method, target, body, self.s)
        self.busy = True
        if self.s.latency > 0:
            self.timer = self.loop.call_later(self.s.latency, self._start, answer)
        else:
            self._start(answer)

    def _start(self, answer: Answer) -> None:
        if self.transport is None:
            return
        head = b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n" % (
            answer.status, _STATUS_TEXT.get(answer.status, b"Status"), answer.content_type)
        head += b"" if self.keep_alive else b"connection: close\r\n"
        if not answer.events:
            self.transport.write(head + b"content-length: %d\r\n\r\n" % len(answer.body) + answer.body)
            self._done()
            return
        head += b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n\r\n"
        if self.s.chunk_interval <= 0:
            self.transport.write(head + b"".join(_chunk(e) for e in answer.events) + b"0\r\n\r\n")
            self._done()
            return
        self.transport.write(head + _chunk(answer.events[0]))
        self.timer = self.loop.call_later(self.s.chunk_interval, self._send_event, answer.events, 1)

    def _send_event(self, events: tuple[bytes, ...], i: int) -> None:
        if self.transport is None:
            return
        if i + 1 < len(events):
            self.transport.write(_chunk(events[i]))
            self.timer = self.loop.call_later(self.s.chunk_interval, self._send_event, events, i + 1)
        else:
            self.transport.write(_chunk(events[i]) + b"0\r\n\r\n")
            self._done()

    def _done(self) -> None:
        self.busy = False
        self.timer = None
        if not self.keep_alive and self.transport:
            self.transport.close()
            return
        if self.buf:
            self._next_request()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _take_request(buf: bytearray) -> tuple[bytes, bytes, bytes, bool] | None:
    """Remove one whole request from buf: (method, target, body, keep_alive), or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).split(b"\r\n")
    method, target, version = (head[0].split(b" ") + [b"", b""])[:3]
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        decoded = _take_chunked(buf, start)
        if decoded is None:
            return None
        body, consumed = decoded
    else:
        length = int(headers.get(b"content-length", b"0") or 0)
        if len(buf) < start + length:
            return None
        body, consumed = bytes(buf[start:start + length]), start + length
    del buf[:consumed]
    connection = headers.get(b"connection", b"").lower()
    keep_alive = connection != b"close" and (version == b"HTTP/1.1" or connection == b"keep-alive")
    return method, target, body, keep_alive


def _take_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", eol)
            if trailer_end == eol:  # no trailers
                return b"".join(parts), eol + 4
            return (b"".join(parts), trailer_end + 4) if trailer_end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2


async def serve(host: str, port: int, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(settings), host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake upstream on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--chunk-interval-ms", type=float, default=1.0)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--completion-words", type=int, default=50)
    parser.add_argument("--embedding-dim", type=int, default=1536)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("the fake upstream serves loopback only")
    settings = Settings(args.latency_ms / 1000, args.chunk_interval_ms / 1000, args.chunks,
                        args.completion_words, args.embedding_dim)
    run_loop(serve(args.host, args.port, settings))


def run_loop(main_coroutine: Any) -> None:
    """uvloop when it is installed: the upstream must stay the cheapest process."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_coroutine)
        return
    uvloop.run(main_coroutine)


if __name__ == "__main__":
    main()
