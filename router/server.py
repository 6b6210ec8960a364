"""Running the app: one process, or N worker processes sharing the port.

SIGTERM/SIGINT stop accepting, let in-flight requests finish within the grace
period, then close everything (flushing usage). SIGHUP reloads the route table.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from router.admin import reload_table
from router.config import ConfigError

log = logging.getLogger("llm_router")


def run(main: Callable[[], Awaitable[None]]) -> None:
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(main())


async def serve_app(app: web.Application, host: str, port: int, grace: float, reuse_port: bool = False,
                    on_started: Callable[[list[Any]], None] | None = None) -> None:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=grace, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, app)
    sockets = list(site._server.sockets) if site._server else []  # type: ignore[union-attr]
    if on_started:
        on_started(sockets)
    try:
        await stop.wait()
        log.info("stopping: no new connections; in-flight requests get up to %ss", grace,
                 extra={"fields": {"grace_seconds": grace}})
    finally:
        await runner.cleanup()
        log.info("stopped")


def _reload_on_signal(app: web.Application) -> None:
    try:
        reload_table(app)
    except ConfigError:
        pass  # logged and counted by reload_table; the running table stays


def bound_port(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1]) if sockets else 0


def run_workers(target: Callable[..., None], args: tuple[Any, ...], workers: int) -> None:
    """Start `workers` processes running `target(*args)` on one port (SO_REUSEPORT),
    forward SIGTERM/SIGINT/SIGHUP to them and wait for them to end."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args, name=f"llm-router-worker-{i}") for i in range(workers)]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid and proc.is_alive():
                import os

                os.kill(proc.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for proc in procs:
        proc.join()
