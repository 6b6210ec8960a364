"""Running the app: one process, or N worker processes sharing the port.

SIGTERM/SIGINT stop accepting, let in-flight requests finish within the grace
period, then end those still running (a stream with a last error event saying the
gateway is shutting down, its usage so far metered), and close everything (flushing
usage): the process exits within the grace plus `SHUTDOWN_MARGIN` and the usage
flush. SIGHUP reloads the route table.

With N workers a supervisor process starts them (SO_REUSEPORT on one port),
forwards SIGTERM/SIGINT/SIGHUP to all of them, and turns a worker's SIGUSR1 (sent
after `POST /admin/reload` succeeded there) into SIGHUP for every worker, so one
reload reaches them all. It also gives them a fresh Prometheus multiprocess
directory, marks each worker dead there when it exits, and removes it at the end.
A worker that dies on its own (not asked to stop) is replaced, unless it died within
its first seconds, as one that cannot start would die again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from router.config.reload import RELOADER, SUPERVISOR_PID_ENV
from router.config.schema import ConfigError
from router.exchange import IN_FLIGHT
from router.gateway import GATEWAY
from router.http.connections import GatewayRunner

log = logging.getLogger("llm_router")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MIN_WORKER_LIFETIME = 5.0  # seconds; a worker that dies sooner is not replaced
SHUTDOWN_MARGIN = 2.0  # seconds past the grace for the requests cut at its end to finish their ending


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        asyncio.run(main())


async def serve_app(app: web.Application, host: str, port: int, grace: float, reuse_port: bool = False,
                    on_started: Callable[[list[Any]], None] | None = None,
                    metrics_app: web.Application | None = None, metrics_port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT; `metrics_app` on `metrics_port` too, when given."""
    settings = app[GATEWAY].runtime.table.server  # read at start: a reload does not change these
    # The grace is spent in `_drain`; aiohttp's own shutdown then finds nothing running.
    runner = GatewayRunner(app, timeouts=settings.client_timeouts, max_connections=settings.max_connections,
                           handler_cancellation=True, shutdown_timeout=SHUTDOWN_MARGIN, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    metrics_runner: web.AppRunner | None = None
    if metrics_app is not None and metrics_port is not None:
        metrics_runner = web.AppRunner(metrics_app, access_log=None, shutdown_timeout=1.0)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, host, metrics_port, reuse_port=reuse_port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload_on_signal, app)
    sockets = list(site._server.sockets) if site._server else []  # type: ignore[attr-defined]
    if on_started:
        on_started(sockets)
    try:
        await stop.wait()
        log.info("stopping: no new connections; in-flight requests get up to %ss", grace,
                 extra={"fields": {"grace_seconds": grace}})
        await _drain(runner, site, grace)
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()
        log.info("stopped")


async def _drain(runner: web.AppRunner, site: web.TCPSite, grace: float) -> None:
    """Stop accepting, close idle connections (busy ones close after their request),
    give the requests running `grace` seconds, then end those left."""
    await site.stop()
    if runner.server is not None:
        runner.server.pre_shutdown()
    cut = await runner.app[IN_FLIGHT].drain(grace, SHUTDOWN_MARGIN)
    if cut:
        log.warning("shutdown grace over: ended the requests still running", extra={"fields": {
            "requests": cut, "grace_seconds": grace}})


def _reload_on_signal(app: web.Application) -> None:
    with contextlib.suppress(ConfigError):  # logged and counted by the reloader; the running table stays
        app[RELOADER].reload("signal")


def bound_port(sockets: list[socket.socket]) -> int:
    return int(sockets[0].getsockname()[1]) if sockets else 0


def run_workers(target: Callable[..., None], args: tuple[Any, ...], workers: int) -> int:
    """Run `workers` processes of `target(*args)` on one port; return once all have ended:
    0, or the first non-zero exit code."""
    metrics_dir = tempfile.mkdtemp(prefix="llm-router-metrics-", dir=os.environ.get(MULTIPROC_ENV) or None)
    # Inherited by the spawned workers, before they import prometheus_client.
    os.environ[MULTIPROC_ENV] = metrics_dir
    os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())
    supervisor = _Supervisor(target, args)

    def stop(signum: int, _frame: Any) -> None:
        supervisor.stopping = True
        supervisor.send_all(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: supervisor.send_all(signal.SIGHUP))
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: supervisor.send_all(signal.SIGHUP))
    try:
        for _ in range(workers):
            supervisor.start_one()
        return supervisor.wait(metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class _Supervisor:
    """The worker processes: started, signalled, replaced when one dies on its own."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.target = target
        self.args = args
        self.running: dict[int, tuple[Any, float]] = {}  # sentinel -> (process, started)
        self.stopping = False
        self.started = 0

    def start_one(self) -> None:
        proc = self.ctx.Process(target=self.target, args=self.args, name=f"llm-router-worker-{self.started}")
        self.started += 1
        proc.start()
        self.running[proc.sentinel] = (proc, time.monotonic())

    def send_all(self, signum: int) -> None:
        for proc, _ in list(self.running.values()):
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, signum)

    def wait(self, metrics_dir: str) -> int:
        status = 0
        while self.running:
            for sentinel in multiprocessing.connection.wait(list(self.running)):
                proc, started = self.running.pop(sentinel)  # type: ignore[arg-type]
                proc.join()
                # Its live gauges (in-flight, flags, version) leave the sums; its counters stay.
                mark_process_dead(proc.pid, metrics_dir)  # type: ignore[no-untyped-call]
                if self.stopping:
                    status = status or (proc.exitcode or 0)
                    continue
                lived = time.monotonic() - started
                log.error("worker exited", extra={"fields": {"pid": proc.pid, "exit_code": proc.exitcode,
                                                             "lived_s": round(lived, 1)}})
                if lived >= MIN_WORKER_LIFETIME:  # a crash at start-up would only crash again
                    self.start_one()
                else:
                    status = status or (proc.exitcode or 1)
        return status
