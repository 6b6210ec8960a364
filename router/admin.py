"""The admin API (admin key only): reload the route table, read usage and the running
table with every secret redacted."""

from __future__ import annotations

import dataclasses
import enum
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from router import metrics
from router.api import GATEWAY
from router.auth import require_admin
from router.config import ConfigError, RouteTable, Secret, load
from router.usage_api import usage_rows

log = logging.getLogger("llm_router")
CONFIG_PATH = web.AppKey("config_path", Path)


def reload_table(app: web.Application) -> RouteTable:
    """Load, validate and swap in the table file; a bad file changes nothing and raises ConfigError."""
    gateway = app[GATEWAY]
    try:
        table = load(app[CONFIG_PATH])
        table = app[TABLE_TRANSFORM](table)
    except ConfigError as exc:
        metrics.CONFIG_RELOADS.labels("failure").inc()
        log.error("route table reload refused", extra={"fields": {"errors": exc.errors}})
        raise
    previous = gateway.runtime.table.version
    gateway.swap(table)
    metrics.CONFIG_RELOADS.labels("success").inc()
    log.info("route table reloaded", extra={"fields": {"version": table.version, "previous": previous,
                                                      "models": len(table.models), "keys": len(table.keys)}})
    return table


# `demo` rewrites each loaded table so its providers point at the simulators.
TABLE_TRANSFORM = web.AppKey("table_transform", Any)


async def reload_handler(request: web.Request) -> web.Response:
    require_admin(request.app[GATEWAY].runtime.table, request)
    try:
        table = reload_table(request.app)
    except ConfigError as exc:
        return web.json_response({"error": {"message": "The route table was not reloaded: "
                                            + "; ".join(exc.errors), "type": "invalid_request_error",
                                            "param": None, "code": "invalid_config"}, "errors": exc.errors},
                                 status=400)
    return web.json_response({"object": "config", "version": table.version})


async def usage_handler(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    require_admin(gateway.runtime.table, request)
    return web.json_response({"object": "list", "data": await usage_rows(request, gateway.meter, key=None)})


def _redacted(value: Any) -> Any:
    if isinstance(value, Secret):
        return "[REDACTED]"
    if isinstance(value, bytes):
        return "[REDACTED]"  # key digests are secrets too: they identify a key
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _redacted(getattr(value, f.name)) for f in dataclasses.fields(value)
                if f.name != "keys_by_digest"}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_redacted(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    if hasattr(value, "items"):
        return {str(k): _redacted(v) for k, v in value.items()}
    return value


async def config_handler(request: web.Request) -> web.Response:
    table = request.app[GATEWAY].runtime.table
    require_admin(table, request)
    return web.json_response({"version": table.version, "config": _redacted(table)})
