"""Usage metering shared by every replica, written to Redis off the client's path.

`record()` only appends to a bounded in-memory queue (or, when it is full, to the
local spool); one background task drains the queue in pipelined batches. Each
record is one Lua call that sets the request's seen marker (SET NX with a TTL) and
only then adds to the day/key/model counters, so a batch retried after a lost reply
counts each request once. Batches Redis cannot take go to the spool file, which is
replayed when Redis answers again. `close()` flushes the queue or spools it.

Key layout (`P` = state.key_prefix): counters `P usage:{D|K|M}` (a hash per day,
key and model; the tag spreads them over a cluster), the seen markers
`P usage:{D|K|M}:seen:<request id>` in the same slot, and per day an index set
`P usage-index:D` of [key, model] pairs read by the usage API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any

import orjson

from router.errors import GatewayError
from router.state.metering import COUNTERS, UsageRecord, record_counts
from router.state.redis import STATE_ERRORS, LuaScript, RedisState
from router.state.spool import Spool

log = logging.getLogger("llm_router")

QUEUE_SIZE = 10_000
BATCH_SIZE = 500
SEEN_TTL = 3 * 24 * 3600  # a retried write or a spool replay within this counts once
CLOSE_TIMEOUT = 5.0
LINGER = 0.01  # seconds the first record of a batch waits for others


def counters_key(prefix: str, date: str, key: str, model: str) -> str:
    return f"{prefix}usage:{{{date}|{key}|{model}}}"


def index_key(prefix: str, date: str) -> str:
    return f"{prefix}usage-index:{date}"


class RedisMeter:
    def __init__(self, state: RedisState, spool_path: str) -> None:
        self.state = state
        self.spool = Spool(spool_path)
        self._queue: asyncio.Queue[UsageRecord | None] = asyncio.Queue(QUEUE_SIZE)
        self._script = LuaScript("meter.lua")
        self._indexed: set[tuple[str, str, str]] = set()  # day/key/model pairs known to the day's index
        self._drainer: asyncio.Task[None] | None = None
        self._in_hand: list[UsageRecord] = []  # the batch being written, spooled if cancelled
        self._replay_lock = asyncio.Lock()
        self._closed = False
        self._replays: set[asyncio.Task[None]] = set()
        state.on_recovery(self.replay)

    def start(self) -> None:
        self._drainer = asyncio.get_running_loop().create_task(self._drain())

    def _replay_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.replay())
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    def record(self, record: UsageRecord) -> None:
        """Never waits on Redis: queue it, or spool it when the queue is full or the meter closed."""
        if self._closed:
            self._spool_now([record])
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._spool_now([record])

    def _spool_now(self, records: list[UsageRecord]) -> None:
        try:
            self.spool.append(records)
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
        if self.state.available():
            try:
                await self.write(batch)
                self.state.succeeded()
                return
            except STATE_ERRORS as exc:
                self.state.failed(exc)
        try:
            await asyncio.to_thread(self.spool.append, batch)
        except OSError as exc:
            _log_unspooled(batch, exc)

    async def write(self, batch: list[UsageRecord]) -> None:
        """One pipelined round trip for the whole batch (one more the first time a day
        sees a key and model); safe to repeat."""
        prefix = self.state.prefix
        calls: list[tuple[list[str], list[Any]]] = []
        new_pairs: dict[str, set[bytes]] = {}
        for r in batch:
            counts = record_counts(r)
            key = counters_key(prefix, r.date, r.key, r.model)
            calls.append(([key, f"{key}:seen:{r.request_id}"],
                          [SEEN_TTL, counts["requests"], counts["prompt_tokens"], counts["completion_tokens"],
                           counts["total_tokens"], counts["errors"], int(r.estimated), counts["cached_tokens"],
                           counts["cache_write_tokens"]]))
            if (r.date, r.key, r.model) not in self._indexed:
                new_pairs.setdefault(r.date, set()).add(orjson.dumps([r.key, r.model]))
        async with asyncio.timeout(self.state.config.socket_timeout * 4):
            await self._script.run_many(self.state.client, calls)
            for date, pairs in new_pairs.items():
                await self.state.client.sadd(index_key(prefix, date), *pairs)
        for r in batch:
            self._indexed.add((r.date, r.key, r.model))

    async def replay(self) -> None:
        """Send what the spool holds; one replay at a time per process, files locked across processes."""
        async with self._replay_lock:
            for claimed in await asyncio.to_thread(self.spool.claim):
                if not self.state.available():
                    return
                await self._replay_file(claimed)

    async def _replay_file(self, claimed: Any) -> None:
        try:
            with self.spool.replaying(claimed) as records:
                if records is None:
                    return
                for start in range(0, len(records), BATCH_SIZE):
                    await self.write(records[start:start + BATCH_SIZE])
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


def _days(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=n)).isoformat() for n in range(max(0, (last - first).days) + 1)]


def _log_unspooled(records: list[UsageRecord], exc: OSError) -> None:
    """Neither Redis nor the spool took them: the log is the last place they can be recovered from."""
    log.error("usage could not be spooled; the records are in this log line",
              extra={"fields": {"error": str(exc)[:200], "records": [dataclasses.asdict(r) for r in records]}})
