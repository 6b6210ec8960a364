"""The admin API (admin key only): reload the route table, read usage and the running
table with every secret redacted."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import logging
import re
from typing import Any

from aiohttp import web

from providers.settings import Secret
from router.config.reload import RELOADER, reload_all_workers
from router.config.schema import ConfigError
from router.gateway import GATEWAY
from router.http.auth import require_admin
from router.http.usage_api import usage_rows

log = logging.getLogger("llm_router")
_URL_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^/@\s]*@")


async def reload_handler(request: web.Request) -> web.Response:
    require_admin(request.app[GATEWAY].runtime.table, request)
    try:
        table = request.app[RELOADER].reload("api")
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
