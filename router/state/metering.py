"""Usage metering per key, model and UTC day.

Translators report usage; the router hands one `UsageRecord` per request to a
`Meter`, off the client's latency path (`record` never waits). `LocalMeter` keeps
the totals in this process; the Redis meter (router/state) shares them across
replicas, idempotent by request id, and spools what Redis cannot take yet.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("llm_router")
MAX_TOKENS = 10**12  # tokens one request can have used; more is a broken upstream


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    date: str  # YYYY-MM-DD, UTC
    key: str
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    error: bool
    estimated: bool = False
    # Of the prompt tokens, those read from and written to the upstream's prompt cache.
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    batch: str = ""  # the write batch it was first sent in (set by the Redis meter; its dedup id)
    search_units: int = 0  # what rerank upstreams that bill by search (Cohere) reported
    reasoning_tokens: int = 0  # of the completion tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_day: tuple[int, str] = (-1, "")


def today() -> str:
    """The UTC date, worked out once a day rather than once a request."""
    global _day
    day = int(time.time() // 86400)
    if day != _day[0]:
        _day = (day, dt.datetime.fromtimestamp(day * 86400, dt.UTC).strftime("%Y-%m-%d"))
    return _day[1]


# Every count a usage row adds up, in this order (meter.lua takes them by name).
COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors", "estimated",
            "cached_tokens", "cache_write_tokens", "reasoning_tokens", "search_units")


def checked(record: UsageRecord) -> UsageRecord:
    """The record with its token counts in [0, MAX_TOKENS]: a negative or absurd count
    from an upstream is never added to a counter (logged, counted as 0 or the maximum)."""
    prompt, completion = record.prompt_tokens, record.completion_tokens
    if _in_range(prompt) and _in_range(completion):
        return record
    log.warning("usage counts out of range; clamped before metering", extra={"fields": {
        "request_id": record.request_id, "model": record.model, "provider": record.provider,
        "prompt_tokens": str(prompt)[:40], "completion_tokens": str(completion)[:40]}})
    return dataclasses.replace(record, prompt_tokens=_clamp(prompt), completion_tokens=_clamp(completion),
                               estimated=True)


def _in_range(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS


def _clamp(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return int(min(MAX_TOKENS, max(0, value)))


def record_counts(record: UsageRecord) -> dict[str, int]:
    return {"requests": 1, "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
            "total_tokens": record.total_tokens, "errors": int(record.error), "estimated": int(record.estimated),
            "cached_tokens": record.cached_tokens, "cache_write_tokens": record.cache_write_tokens,
            "reasoning_tokens": record.reasoning_tokens, "search_units": record.search_units}


class Meter(Protocol):
    def record(self, record: UsageRecord) -> None: ...

    async def query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class LocalMeter:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))

    def record(self, record: UsageRecord) -> None:
        record = checked(record)
        row = self._rows[(record.date, record.key, record.model)]
        for name, value in record_counts(record).items():
            row[name] += value

    async def query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]:
        return [{"date": d, "key": k, "model": m, **counts}
                for (d, k, m), counts in sorted(self._rows.items())
                if start <= d <= end and (key is None or k == key) and (model is None or m == model)]

    async def close(self) -> None:
        return None
