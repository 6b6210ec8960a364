"""Usage metering shared by every replica, written to Redis off the client's path.

`record()` only appends to a bounded in-memory queue (or, when it is full, to the
local spool); one background task drains the queue in pipelined batches. Each batch
gets an id; its records are summed per day/key/model, and each sum is one Lua call
that sets the batch's seen marker for that day/key/model (SET NX with a TTL) and
only then adds to the counters, so a batch retried after a lost reply counts once.
Batches Redis cannot take go to the spool file with their batch id, and are
replayed (whole batches, under the same ids) when Redis answers again. `close()`
flushes the queue or spools it.

The day's index of [key, model] pairs is written with every batch, in the same
round trip: a Redis that lost its data (restart without persistence, failover to a
lagging replica, flush) gets the index back with the next write, as it gets the
counters.

Key layout (`P` = state.key_prefix): counters `P usage:{D|K|M}` (a hash per day,
key and model; the tag spreads them over a cluster), the seen markers
`P usage:{D|K|M}:s:<batch id>` in the same slot (one per batch and day/key/model,
not per request; kept SEEN_TTL), and per day an index set `P usage-index:D`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
from collections import defaultdict
from typing import Any

import orjson

from router import metrics
from router.errors import GatewayError
from router.state.metering import COUNTERS, UsageRecord, checked, record_counts
from router.state.redis import STATE_ERRORS, LuaScript, RedisState
from router.state.spool import Spool

log = logging.getLogger("llm_router")

QUEUE_SIZE = 10_000
BATCH_SIZE = 500
SEEN_TTL = 24 * 3600  # a retried batch or a spool replay within this counts once
CLOSE_TIMEOUT = 5.0
LINGER = 0.01  # seconds the first record of a batch waits for others


def counters_key(prefix: str, date: str, key: str, model: str) -> str:
    return f"{prefix}usage:{{{date}|{key}|{model}}}"


def index_key(prefix: str, date: str) -> str:
    return f"{prefix}usage-index:{date}"


# The counts in the order meter.lua takes them (ARGV 2 to 9).
_SCRIPT_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors", "estimated",
                  "cached_tokens", "cache_write_tokens")


class RedisMeter:
    def __init__(self, state: RedisState, spool_path: str) -> None:
        self.state = state
        self.spool = Spool(spool_path)
        self._queue: asyncio.Queue[UsageRecord | None] = asyncio.Queue(QUEUE_SIZE)
        self._script = LuaScript("meter.lua")
        self._drainer: asyncio.Task[None] | None = None
        self._in_hand: list[UsageRecord] = []  # the batch being written, spooled if cancelled
        self._replay_lock = asyncio.Lock()
        self._closed = False
        self._replays: set[asyncio.Task[None]] = set()
        state.on_recovery(self.replay)

    def start(self) -> None:
        self._drainer = asyncio.get_running_loop().create_task(self._drain())
        self._report_spool()  # what an earlier process left

    def _append(self, records: list[UsageRecord]) -> None:
        """Spool them (blocking: fsync) and report the spool's depth."""
        self.spool.append(records)
        self._report_spool()

    def _report_spool(self) -> None:
        try:
            records, size = self.spool.depth()
        except OSError as exc:
            log.warning("usage spool unreadable", extra={"fields": {"error": str(exc)[:200]}})
            return
        metrics.USAGE_SPOOL_RECORDS.set(records)
        metrics.USAGE_SPOOL_BYTES.set(size)

    def _replay_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.replay())
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    def record(self, record: UsageRecord) -> None:
        """Never waits on Redis: queue it, or spool it when the queue is full or the meter closed."""
        record = checked(record)
        if self._closed:
            self._spool_now([record])
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._spool_now([record])

    def _spool_now(self, records: list[UsageRecord]) -> None:
        try:
            self._append(with_batch(records, new_batch_id()))
        except OSError as exc:
            _log_unspooled(records, exc)

    async def _drain(self) -> None:
        while True:
            first = await self._queue.get()
            if first is not None and self._queue.qsize() < BATCH_SIZE:
                await asyncio.sleep(LINGER)  # let the requests ending meanwhile share the round trip
            batch = [first] if first is not None else []
            while len(batch) < BATCH_SIZE and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    first = None
                else:
                    batch.append(item)
            self._in_hand = batch
            await self._write_or_spool(batch)
            self._in_hand = []
            if self.state.available() and not self._replay_lock.locked() and self.spool.pending():
                self._replay_soon()  # spooled while the queue was full, or left by an earlier process
            if first is None:
                return  # close() asked us to stop, and everything before it is written

    async def _write_or_spool(self, batch: list[UsageRecord]) -> None:
        if not batch:
            return
        batch = with_batch(batch, new_batch_id())  # the same id when Redis took it and when replayed
        if self.state.available():
            try:
                await self.write(batch)
                self.state.succeeded()
                return
            except STATE_ERRORS as exc:
                self.state.failed(exc)
        try:
            await asyncio.to_thread(self._append, batch)
        except OSError as exc:
            _log_unspooled(batch, exc)

    async def write(self, batch: list[UsageRecord]) -> None:
        """One pipelined round trip for whole batches (each record carries its batch id):
        one call per batch and day/key/model, and the days' index; safe to repeat."""
        prefix = self.state.prefix
        sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        pairs: dict[str, set[bytes]] = {}
        for r in batch:
            key = counters_key(prefix, r.date, r.key, r.model)
            total = sums[(key, r.batch or f"r{r.request_id}")]  # spooled before batch ids: per request
            for name, value in record_counts(r).items():
                total[name] += value
            pairs.setdefault(r.date, set()).add(orjson.dumps([r.key, r.model]))
        calls: list[tuple[list[str], list[Any]]] = [
            ([key, f"{key}:s:{seen}"], [SEEN_TTL, *(x for name in COUNTERS for x in (name, counts[name]))])
            for (key, seen), counts in sums.items()]

        def index(pipe: Any) -> None:
            for date, members in pairs.items():
                pipe.sadd(index_key(prefix, date), *members)

        async with asyncio.timeout(self.state.config.socket_timeout * 4):
            await self._script.run_many(self.state.client, calls, also=index)

    async def replay(self) -> None:
        """Send what the spool holds; one replay at a time per process, files locked across processes."""
        async with self._replay_lock:
            try:
                for claimed in await asyncio.to_thread(self.spool.claim):
                    if not self.state.available():
                        return
                    await self._replay_file(claimed)
            finally:
                await asyncio.to_thread(self._report_spool)

    async def _replay_file(self, claimed: Any) -> None:
        try:
            with self.spool.replaying(claimed) as records:
                if records is None:
                    return
                for chunk in whole_batches(records):
                    await self.write(chunk)
                log.info("usage spool replayed", extra={"fields": {"records": len(records)}})
        except STATE_ERRORS as exc:
            self.state.failed(exc)  # the file stays claimed for the next replay

    async def close(self) -> None:
        """Flush the queue to Redis (or the spool) and stop; later records go to the spool."""
        if self._closed:
            return
        self._closed = True  # from now on record() spools: nothing can land behind the stop mark
        if self._drainer is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._queue.put(None)
                await asyncio.shield(self._drainer)
        except TimeoutError:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
            self._spool_now([r for r in self._in_hand + self._take_queued() if r is not None])
        await asyncio.gather(*list(self._replays), return_exceptions=True)

    def _take_queued(self) -> list[UsageRecord | None]:
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]:
        if not self.state.available():
            raise GatewayError(503, "Usage cannot be read right now (the shared state is unreachable); "
                                    "please retry shortly.", code="state_unavailable", headers={"Retry-After": "1"})
        try:
            return await self._query(start, end, key, model)
        except STATE_ERRORS as exc:
            self.state.failed(exc)
            raise GatewayError(503, "Usage cannot be read right now (the shared state is unreachable).",
                               code="state_unavailable", headers={"Retry-After": "1"}) from None

    async def _query(self, start: str, end: str, key: str | None, model: str | None) -> list[dict[str, Any]]:
        prefix, client = self.state.prefix, self.state.client
        days = _days(start, end)
        pipe = client.pipeline(transaction=False)
        for day in days:
            pipe.smembers(index_key(prefix, day))
        wanted: list[tuple[str, str, str]] = []
        for day, members in zip(days, await pipe.execute(), strict=True):
            for member in members:
                k, m = orjson.loads(member)
                if (key is None or k == key) and (model is None or m == model):
                    wanted.append((day, k, m))
        wanted.sort()
        pipe = client.pipeline(transaction=False)
        for day, k, m in wanted:
            pipe.hmget(counters_key(prefix, day, k, m), list(COUNTERS))
        rows = []
        for (day, k, m), values in zip(wanted, await pipe.execute() if wanted else [], strict=True):
            if values[0] is not None:  # indexed, but the counters were never written
                rows.append({"date": day, "key": k, "model": m, **{c: int(v or 0) for c, v in zip(COUNTERS, values,
                                                                                                   strict=True)}})
        return rows


def new_batch_id() -> str:
    return f"{random.getrandbits(64):016x}"  # an id, not a secret: no system call


def with_batch(records: list[UsageRecord], batch_id: str) -> list[UsageRecord]:
    """The records, each with a batch id (those that have one keep it)."""
    return [r if r.batch else dataclasses.replace(r, batch=batch_id) for r in records]


def whole_batches(records: list[UsageRecord]) -> list[list[UsageRecord]]:
    """Spooled records in chunks of about BATCH_SIZE that never split a batch: a batch's
    seen marker must cover the same records each time it is sent."""
    by_batch: dict[str, list[UsageRecord]] = defaultdict(list)
    for r in records:
        by_batch[r.batch or f"r{r.request_id}"].append(r)
    chunks: list[list[UsageRecord]] = [[]]
    for group in by_batch.values():
        if chunks[-1] and len(chunks[-1]) + len(group) > BATCH_SIZE:
            chunks.append([])
        chunks[-1].extend(group)
    return [c for c in chunks if c]


def _days(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=n)).isoformat() for n in range(max(0, (last - first).days) + 1)]


def _log_unspooled(records: list[UsageRecord], exc: OSError) -> None:
    """Neither Redis nor the spool took them: the log is the last place they can be recovered from."""
    log.error("usage could not be spooled; the records are in this log line",
              extra={"fields": {"error": str(exc)[:200], "records": [dataclasses.asdict(r) for r in records]}})
