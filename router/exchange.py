"""One client request as the gateway saw it (built once by the middleware, handed down
to the handler, dispatch and relay, read back for the metrics and the log line), and the
set of requests in flight that a shutdown waits for."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from providers.base import Usage
from router.errors import OPENAI_ERRORS, ErrorShape

log = logging.getLogger("llm_router")

CLIENT_CLOSED = 499  # nginx's code for a client that went away before the answer
SHUTTING_DOWN = "The gateway is shutting down; retry the request."


@dataclass(slots=True)
class Trace:
    """What the attempts of one client request did, for metrics and the log."""

    attempts: int = 0
    retries: int = 0
    provider: str = ""
    target_model: str = ""
    upstream_wait: float = 0.0  # seconds spent waiting on upstreams (and for their slots)


@dataclass(slots=True)
class Exchange:
    """One client request as the gateway saw it."""

    request_id: str
    started: float
    endpoint: str = ""
    key_name: str = ""
    model: str = ""  # the public model that answered, or the one asked for
    status: int = 0
    stream: bool = False
    usage: Usage | None = None
    ttft: float | None = None
    trace: Trace = field(default_factory=Trace)
    gateway_seconds: float | None = None  # overhead, when the handler measured it
    content: dict[str, str] | None = None  # bodies, only when logging.debug_content is set
    errors: ErrorShape = OPENAI_ERRORS  # the client protocol's error shape, once its route is known
    dropped_params: tuple[str, ...] = ()  # parameters the model's drop_params removed from the request


EXCHANGE = web.RequestKey("exchange", Exchange)


class InFlight:
    """The requests being handled, so that a shutdown can wait for them to end and, once
    its grace is over, end those still running (a stream with a last error event)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.shutting_down = False

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            self._idle.clear()

    def leave(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def drain(self, grace: float, margin: float) -> int:
        """Wait up to `grace` seconds for every request to end; then cancel those left and
        wait up to `margin` for them to finish their ending. Returns how many were cut."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return 0
        except TimeoutError:
            pass
        self.shutting_down = True
        cut = list(self._tasks)
        for task in cut:
            task.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), margin)
        except TimeoutError:
            log.error("requests still running after the shutdown margin", extra={"fields": {"left": len(self)}})
        return len(cut)

    def ended_by_shutdown(self) -> bool:
        """Whether the current task's CancelledError is the shutdown's (then it is taken back)."""
        task = asyncio.current_task()
        return self.shutting_down and task is not None and task.uncancel() == 0


IN_FLIGHT = web.AppKey("in_flight", InFlight)
