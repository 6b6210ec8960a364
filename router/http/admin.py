"""The admin API (admin key only): reload the route table, read usage and the running
table with every secret redacted."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from providers.settings import Secret
from router import metrics
from router.config.schema import ConfigError, RouteTable, load
from router.http.auth import require_admin
from router.http.handlers import GATEWAY
from router.http.usage_api import usage_rows

log = logging.getLogger("llm_router")
SUPERVISOR_PID_ENV = "LLM_ROUTER_SUPERVISOR_PID"  # set by `serve --workers N` for its workers
_URL_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")
CONFIG_PATH = web.AppKey("config_path", Path)


def reload_table(app: web.Application, trigger: str = "api") -> RouteTable:
    """Load, validate and swap in the table file in one step; a bad file changes nothing,
    is logged and counted, and raises ConfigError. The file unchanged swaps nothing but
    is a successful reload all the same (a valid table serves: contract, Health)."""
    gateway = app[GATEWAY]
    path = app[CONFIG_PATH]
    previous = gateway.runtime.table
    try:
        table = app[TABLE_TRANSFORM](load(path))
        if table.version == previous.version and table == previous:
            metrics.CONFIG_RELOADS.labels("success").inc()
            log.info("route table unchanged", extra={"fields": {"version": table.version, "trigger": trigger}})
            return previous
        gateway.swap(table)
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


# `demo` rewrites each loaded table so its providers point at the simulators.
TableTransform = Callable[[RouteTable], RouteTable]
TABLE_TRANSFORM: web.AppKey[TableTransform] = web.AppKey("table_transform")


async def reload_handler(request: web.Request) -> web.Response:
    require_admin(request.app[GATEWAY].runtime.table, request)
    try:
        table = reload_table(request.app)
    except ConfigError as exc:
        return web.json_response({"error": {"message": "The route table was not reloaded: "
                                            + "; ".join(exc.errors), "type": "invalid_request_error",
                                            "param": None, "code": "invalid_config"}, "errors": exc.errors},
                                 status=400)
    reload_all_workers()
    return web.json_response({"object": "config", "version": table.version})


async def usage_handler(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_admin(gateway.runtime.table, request)
    return web.json_response({"object": "list", "data": await usage_rows(request, gateway.meter, key=None)})


def _redacted(value: Any) -> Any:
    if isinstance(value, Secret):
        return "[REDACTED]"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1[REDACTED]@", value)  # a base_url may carry user:password@
    if isinstance(value, bytes):
        return "[REDACTED]"  # key digests are secrets too: they identify a key
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shown = {f.name: _redacted(getattr(value, f.name)) for f in dataclasses.fields(value)
                 if f.name != "keys_by_digest"}
        settings = shown.pop("settings", None)  # a provider: shown flat, as the route table writes it
        return {**settings, **shown} if isinstance(settings, dict) else shown
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_redacted(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    if hasattr(value, "items"):
        return {str(k): _redacted(v) for k, v in value.items()}
    return value


async def config_handler(request: web.Request) -> web.Response:
    table = request.app[GATEWAY].runtime.table
    require_admin(table, request)
    return web.json_response({"version": table.version, "config": _redacted(table)})
