"""Reloading the route table while serving: validate the file, swap it in whole, or keep
the running table and say why. Requests in flight finish on the table they began with."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from router import metrics
from router.config.schema import ConfigError, RouteTable, load

log = logging.getLogger("llm_router")
SUPERVISOR_PID_ENV = "LLM_ROUTER_SUPERVISOR_PID"  # set by `serve --workers N` for its workers


class Serving(Protocol):
    """What serves a route table: the running gateway."""

    @property
    def table(self) -> RouteTable: ...

    def swap(self, table: RouteTable) -> object: ...


# `demo` rewrites each loaded table so its providers point at the simulators.
TableTransform = Callable[[RouteTable], RouteTable]


@dataclass(frozen=True, slots=True)
class Reloader:
    """The one way a table file is reloaded: by the admin API, SIGHUP and the file watcher."""

    serving: Serving
    path: Path
    transform: TableTransform = lambda table: table

    def reload(self, trigger: str) -> RouteTable:
        """Load, validate and swap in the table file in one step; a bad file changes nothing,
        is logged and counted, and raises ConfigError. The file unchanged swaps nothing but
        is a successful reload all the same (a valid table serves: contract, Health)."""
        return _reload(self, trigger)


def _reload(reloader: Reloader, trigger: str) -> RouteTable:
    path, previous = reloader.path, reloader.serving.table
    try:
        table = reloader.transform(load(path))
        if table.version == previous.version and table == previous:
            metrics.CONFIG_RELOADS.labels("success").inc()
            log.info("route table unchanged", extra={"fields": {"version": table.version, "trigger": trigger}})
            return previous
        reloader.serving.swap(table)
    except ConfigError as exc:
        _refused(path, trigger, exc.errors)
        raise
    except Exception as exc:  # anything the validation missed (an adapter refusing its config)
        errors = [f"{path}: {type(exc).__name__}: {exc}"]
        _refused(path, trigger, errors)
        raise ConfigError(errors) from exc
    metrics.CONFIG_RELOADS.labels("success").inc()
    log.info("route table reloaded", extra={"fields": {
        "version": table.version, "previous": previous.version, "trigger": trigger, "models": len(table.models),
        "added": sorted(set(table.models) - set(previous.models)),
        "removed": sorted(set(previous.models) - set(table.models)),
        "keys": len(table.keys), "providers": len(table.providers)}})
    _warn_of_restart_only_changes(previous, table)
    return table


def _warn_of_restart_only_changes(previous: RouteTable, table: RouteTable) -> None:
    """The listening socket, the HTTP parser's limits and the state backend are set up
    once per process: changes to them take effect at the next restart, and say so."""
    old, new = previous.server, table.server
    changed = [name for name, differs in (
        ("server.host", old.host != new.host), ("server.port", old.port != new.port),
        ("server.request_limits.max_body_bytes",
         old.request_limits.max_body_bytes != new.request_limits.max_body_bytes),
        ("server.request_limits.max_header_bytes",
         old.request_limits.max_header_bytes != new.request_limits.max_header_bytes),
        ("state", previous.state != table.state)) if differs]
    if changed:
        log.warning("these changes take effect at the next restart", extra={"fields": {"settings": changed}})


def _refused(path: Path, trigger: str, errors: list[str]) -> None:
    metrics.CONFIG_RELOADS.labels("failure").inc()
    log.error("route table reload refused; the running table stays", extra={"fields": {
        "file": str(path), "trigger": trigger, "errors": errors}})


def reload_all_workers() -> None:
    """Under `serve --workers N`, ask the supervisor to have every worker reload (it sends
    them SIGHUP; this worker finds its table unchanged). A no-op in a single process."""
    supervisor = os.environ.get(SUPERVISOR_PID_ENV, "")
    if supervisor.isdigit() and int(supervisor) == os.getppid():
        os.kill(int(supervisor), signal.SIGUSR1)


RELOADER = web.AppKey("reloader", Reloader)
