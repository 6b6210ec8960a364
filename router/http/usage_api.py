"""The usage query shared by `GET /admin/usage` and a caller's own `GET {ep}/usage`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from router.errors import GatewayError
from router.state.metering import Meter, today

MAX_DAYS = 366


def _date(request: web.Request, name: str, default: str) -> str:
    value = request.query.get(name, default)
    try:
        return dt.date.fromisoformat(value).isoformat() if len(value) == 10 else _invalid(name, value)
    except ValueError:
        return _invalid(name, value)


def _invalid(name: str, value: str) -> str:
    raise GatewayError(400, f"Invalid '{name}': expected a date as YYYY-MM-DD, got '{value[:40]}'.", param=name)


async def usage_rows(request: web.Request, meter: Meter, key: str | None) -> list[dict[str, Any]]:
    """Rows per day, key and model; `key` pins the caller's own rows."""
    start = _date(request, "from", today())
    end = _date(request, "to", start)
    if end < start:
        raise GatewayError(400, "'to' is before 'from'.", param="to")
    if (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days > MAX_DAYS:
        raise GatewayError(400, f"At most {MAX_DAYS} days per query.", param="to")
    wanted_key = key if key is not None else request.query.get("key") or None
    return await meter.query(start, end, wanted_key, request.query.get("model") or None)
