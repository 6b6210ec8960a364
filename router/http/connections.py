"""Client connections under bounds: how long a client may take to send a request's
headers or to continue its body, and how many connections may be open at once.

aiohttp closes a connection idle between requests (`keepalive_timeout`) but has no
deadline for headers or a body: a client sending nothing, trickling a header byte a
second, or never finishing its body held its connection (and a descriptor) for good.
Here each connection has one timer, set for the next deadline it may miss; and when
`max_connections` are open, a new connection closes the oldest idle one (one waiting
for a request), or is itself closed when every connection is busy, so that a flood of
idle connections cannot starve real clients.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web, web_protocol

from router.config.schema import ClientTimeouts


class GuardedHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler with header and body-idle deadlines."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.timeouts = manager.timeouts
        self.header_since: float | None = None  # when the wait for the current request's headers began
        self.last_data = 0.0
        self.deadline_handle: asyncio.TimerHandle | None = None

    def waiting_for_request(self) -> bool:
        return not self._messages and self._current_request is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.header_since = self.last_data = self._loop.time()
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.deadline_handle is not None:
            self.deadline_handle.cancel()
            self.deadline_handle = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        now = self._loop.time()
        self.last_data = now
        if self.header_since is None and self.waiting_for_request():
            self.header_since = now  # the first byte of the next request on a kept-alive connection
        super().data_received(data)
        if not self.waiting_for_request():
            self.header_since = None

    def _arm(self) -> None:
        now = self._loop.time()
        timeouts = self.timeouts
        request = self._current_request
        if self.waiting_for_request() and self.header_since is not None:
            due = self.header_since + timeouts.header
        elif request is not None and not request.content.is_eof():
            due = self.last_data + timeouts.body_idle
        else:  # idle between requests (aiohttp's keep-alive timer), or the handler at work
            due = now + min(timeouts.header, timeouts.body_idle)
        self.deadline_handle = self._loop.call_at(max(due, now), self._check)

    def _check(self) -> None:
        self.deadline_handle = None
        if self.transport is None:
            return
        now = self._loop.time()
        request = self._current_request
        late_headers = (self.waiting_for_request() and self.header_since is not None
                        and now - self.header_since >= self.timeouts.header)
        stalled_body = (request is not None and not request.content.is_eof()
                        and now - self.last_data >= self.timeouts.body_idle)
        if late_headers or stalled_body:
            self.force_close()
            return
        self._arm()


class GuardedServer(web.Server):
    """aiohttp's Server making GuardedHandlers and bounding the open connections."""

    def __init__(self, handler: Any, *, timeouts: ClientTimeouts, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.timeouts = timeouts
        self.max_connections = max_connections

    def __call__(self) -> web_protocol.RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: web_protocol.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if len(self._connections) <= self.max_connections:
            return
        for other in self._connections:  # oldest first
            if other is not handler and isinstance(other, GuardedHandler) and other.waiting_for_request() \
                    and other.transport is not None:
                other.force_close()
                return
        handler.force_close()  # every connection is busy with a request: this one waits its turn elsewhere


class GatewayRunner(web.AppRunner):
    """An AppRunner whose server is a GuardedServer."""

    def __init__(self, app: web.Application, *, timeouts: ClientTimeouts, max_connections: int,
                 **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=timeouts.keep_alive, **kwargs)
        self.timeouts = timeouts
        self.max_connections = max_connections

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(plain.request_handler, request_factory=plain.request_factory,
                             handler_cancellation=plain.handler_cancellation, timeouts=self.timeouts,
                             max_connections=self.max_connections, **plain._kwargs)
