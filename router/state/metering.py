"""Usage metering per key, model and UTC day.

Translators report usage; the router hands one `UsageRecord` per request to a
`Meter`, off the client's latency path (`record` never waits). `LocalMeter` keeps
the totals in this process; the Redis meter (router/state) shares them across
replicas, idempotent by request id, and spools what Redis cannot take yet.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol


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


COUNTERS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors", "cached_tokens",
            "cache_write_tokens")


def record_counts(record: UsageRecord) -> dict[str, int]:
    return {"requests": 1, "prompt_tokens": record.prompt_tokens, "completion_tokens": record.completion_tokens,
            "total_tokens": record.total_tokens, "errors": int(record.error), "cached_tokens": record.cached_tokens,
            "cache_write_tokens": record.cache_write_tokens}


class Meter(Protocol):
    def record(self, record: UsageRecord) -> None: ...

    async def query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


class LocalMeter:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))

    def record(self, record: UsageRecord) -> None:
        row = self._rows[(record.date, record.key, record.model)]
        for name, value in record_counts(record).items():
            row[name] += value

    async def query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]:
        return [{"date": d, "key": k, "model": m, **counts}
                for (d, k, m), counts in sorted(self._rows.items())
                if start <= d <= end and (key is None or k == key) and (model is None or m == model)]

    async def close(self) -> None:
        return None
