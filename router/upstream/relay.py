"""Relay one upstream stream to the client, chunk by chunk as it arrives.

The first upstream bytes are translated before the client gets a status: a stream
that fails there is an HTTP error, not a 200. After that, a failure (the upstream
dropped, or sent nothing for `timeouts.idle`, or ran past `timeouts.total`) ends the
client's stream with an OpenAI-shaped `data: {"error": ...}` event. A client that
goes away (the handler is cancelled, or a write finds the connection closed) closes
the upstream connection at once. The relay only moves chunks: the client's protocol
(a `ClientStream`, from its ingress) frames them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import orjson
from aiohttp import web

from providers.base import SHAPE_ERRORS, Operation, StreamDecoder, StreamState, StreamTranslator, UpstreamError, Usage
from router.exchange import CLIENT_CLOSED, IN_FLIGHT, SHUTTING_DOWN, Exchange, InFlight
from router.tokens import PromptEstimate, from_chars
from router.upstream.dispatch import Outcome, malformed_event, translate_chunk


class ClientStream(Protocol):
    """How the client's protocol writes a stream: canonical chunks (OpenAI chunk JSON) in,
    the bytes to send out."""

    def chunks(self, payloads: list[bytes]) -> bytes: ...

    def end(self, payloads: list[bytes]) -> bytes:
        """The last payloads (the usage chunk among them) and the protocol's end of stream."""
        ...

    def error(self, error: UpstreamError) -> bytes:
        """A failure after the stream began, as the protocol's error event."""
        ...


def usage_of(state: StreamState, prompt_estimate: PromptEstimate) -> Usage:
    """The stream's usage: the upstream's, or estimated (and marked so) where it gave none."""
    if state.usage is not None and not state.usage.estimated:
        return state.usage
    return Usage(prompt_estimate.value, from_chars(state.completion_chars), estimated=True)


def _usage_chunk(state: StreamState, usage: Usage, chunk_object: str) -> bytes:
    return orjson.dumps({"id": state.id, "object": chunk_object, "created": state.created,
                         "model": state.public_model, "choices": [], "usage": usage.to_openai()})


class StreamWatchdog:
    """The idle and total timeouts of one stream with one timer, not one per chunk.

    While the relay waits for the upstream (`reading`), the timer cancels the relay
    once `idle` seconds passed without a chunk; the total applies throughout. When
    it fires early it only re-arms itself, so a chunk costs no timer operation."""

    def __init__(self, idle: float, total: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._idle = idle
        self._deadline = self._loop.time() + total
        self._since = self._loop.time()  # when the current wait for the upstream began
        self._reading = False
        self._fired = False
        self._handle = self._loop.call_at(min(self._since + idle, self._deadline), self._check)

    @property
    def reading(self) -> bool:
        return self._reading

    @reading.setter
    def reading(self, value: bool) -> None:
        if value:
            self._since = self._loop.time()
        self._reading = value

    def _check(self) -> None:
        now = self._loop.time()
        idle_until = self._since + self._idle if self._reading else now + self._idle
        if now >= self._deadline or (self._reading and now >= idle_until):
            self._fired = True
            if self._task is not None:
                self._task.cancel()
            return
        self._handle = self._loop.call_at(min(idle_until, self._deadline), self._check)

    def timed_out(self) -> bool:
        """Whether a CancelledError was this watchdog's (then the cancellation is taken back)."""
        return self._fired and self._task is not None and self._task.uncancel() == 0

    def stop(self) -> None:
        self._handle.cancel()


class StreamRelay:
    def __init__(self, exchange: Exchange, outcome: Outcome, prompt_estimate: PromptEstimate,
                 client: ClientStream) -> None:
        self.exchange = exchange
        self.client = client
        self.outcome = outcome
        self.prompt_estimate = prompt_estimate
        assert outcome.translator is not None and outcome.decoder is not None  # the attempt began the stream
        self.translator: StreamTranslator = outcome.translator
        self.decoder: StreamDecoder = outcome.decoder
        self._setup = 0.0
        self._in_flight: InFlight | None = None

    @property
    def usage(self) -> Usage:
        """What was produced so far, also when the stream ended early."""
        return usage_of(self.translator.state, self.prompt_estimate)

    async def run(self, request: web.Request, headers: Mapping[str, str]) -> web.StreamResponse:
        upstream = self.outcome.response
        assert upstream is not None
        self._in_flight = request.app.get(IN_FLIGHT)
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = "text/event-stream"
        response.headers["Cache-Control"] = "no-cache"
        await response.prepare(request)
        ex = self.exchange
        self._setup = time.perf_counter() - ex.started - ex.trace.upstream_wait
        try:
            await self._pump(response, upstream, self.outcome.first_payloads)
        except ConnectionResetError:  # the client went away: the caller's `async with` ends the upstream
            self.exchange.status = CLIENT_CLOSED
        return response

    async def _pump(self, response: web.StreamResponse, upstream: aiohttp.ClientResponse,
                    first: list[bytes]) -> None:
        ex, state = self.exchange, self.translator.state
        timeouts = self.outcome.provider.timeouts
        watchdog = StreamWatchdog(timeouts.idle, timeouts.total)
        gateway = 0.0
        try:
            if first:
                await response.write(self.client.chunks(first))
                ex.ttft = time.perf_counter() - ex.started
            while not state.done:
                watchdog.reading = True
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, OSError):
                    raise UpstreamError(502, "The connection to the upstream provider was lost mid-stream.",
                                        code="upstream_disconnected") from None
                watchdog.reading = False
                if not chunk:
                    break
                began = time.perf_counter()
                payloads = translate_chunk(self.decoder, self.translator, chunk)
                if payloads:
                    if ex.ttft is None:
                        ex.ttft = began - ex.started
                    await response.write(self.client.chunks(payloads))
                gateway += time.perf_counter() - began
            await response.write(self._tail())
        except asyncio.CancelledError:
            if watchdog.timed_out():
                await self._end_with(response, UpstreamError(
                    504, "The upstream provider stopped sending (stream timeout).", type="timeout",
                    code="upstream_timeout"))
            elif self._in_flight is not None and self._in_flight.ended_by_shutdown():
                # The shutdown grace is over: the client learns why its stream ends here.
                await self._end_with(response, UpstreamError(503, SHUTTING_DOWN, code="shutting_down"))
            else:
                raise  # the client went away
        except UpstreamError as error:
            await self._end_with(response, error)
        finally:
            watchdog.stop()
            # Also when the client went away: only the gateway's own time, never the stream's.
            ex.gateway_seconds = self._setup + gateway
        await response.write_eof()

    async def _end_with(self, response: web.StreamResponse, error: UpstreamError) -> None:
        self.exchange.status = error.client_status()
        await response.write(self.client.error(error))

    def _tail(self) -> bytes:
        """What is owed once the upstream body ended: buffered events, the usage chunk, the end."""
        state = self.translator.state
        payloads: list[bytes] = []
        try:
            for event in self.decoder.flush():
                payloads.extend(self.translator.feed(event))
            payloads.extend(self.translator.finish())
        except SHAPE_ERRORS:
            raise malformed_event() from None
        if state.usage is None or state.usage.estimated:
            usage = self.usage
            state.usage = usage
            if state.include_usage:
                payloads.append(_usage_chunk(state, usage, _chunk_object(self.outcome)))
        return self.client.end(payloads)


def _chunk_object(outcome: Outcome) -> str:
    return "text_completion" if outcome.request.operation is Operation.COMPLETIONS else "chat.completion.chunk"
