"""The shared state backend: one Redis client per process, its health, and the
circuit breaker that keeps requests from waiting on a Redis that is down.

Every operation has a short socket timeout (`state.socket_timeout`) and no client
retries. The first failure opens the breaker: `available()` turns false at once, so
later requests skip Redis without waiting (limits follow `state.on_failure`, usage
goes to the spool), `/readyz` answers 503 and `llm_router_state_degraded` is 1. A
background probe PINGs Redis and closes the breaker when it answers again; then the
listeners run (the meter replays its spool, the limiter its unsettled admissions).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Coroutine
from importlib import resources
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.config.schema import StateConfig

log = logging.getLogger("llm_router")

# What a failed Redis operation can raise (OSError: refused connections, resets).
STATE_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TimeoutError)
TIMEOUT_STRIKES = 3  # timeouts in a row that open the breaker
PROBE_INTERVAL_UP = 2.0  # seconds between health checks while Redis answers
PROBE_INTERVAL_DOWN = 0.25  # ... and while it does not: recovery is noticed within this

MAX_CONNECTIONS = 64  # per process, to one Redis
CLUSTER_MAX_CONNECTIONS = 1024  # per process and cluster node (the cluster client does not queue for one)
Client = redis.Redis | RedisCluster


def load_lua(name: str) -> str:
    return resources.files("router.state").joinpath("lua", name).read_text(encoding="utf-8")


def make_client(config: StateConfig) -> Client:
    assert config.redis_url is not None
    url = config.redis_url.get()
    timeout = config.socket_timeout
    no_retry = Retry(NoBackoff(), 0)
    if config.cluster:
        # One retry: a MOVED answer after a resharding is followed once, with the slot map refreshed.
        return RedisCluster.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                     retry=Retry(NoBackoff(), 1), max_connections=CLUSTER_MAX_CONNECTIONS)
    # A burst waits (at most the socket timeout) for one of a bounded set of connections
    # rather than opening hundreds: one EVALSHA holds a connection for a round trip only.
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=timeout * 4,
                                                 socket_timeout=timeout, socket_connect_timeout=timeout,
                                                 retry=no_retry, retry_on_timeout=False)
    return redis.Redis.from_pool(pool)


class LuaScript:
    """EVALSHA on the hot path; EVAL (which also caches the script) when Redis lost it."""

    def __init__(self, name: str) -> None:
        self.source = load_lua(name)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)

    async def run_many(self, client: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Many calls in one pipelined round trip. Where Redis lost the script, it is
        loaded and the whole batch sent again: only for idempotent scripts."""
        cluster = isinstance(client, RedisCluster)  # redis-py refuses EVALSHA in a cluster pipeline
        for attempt in range(2):
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                if cluster:
                    pipe.eval(self.source, len(keys), *keys, *args)
                else:
                    pipe.evalsha(self.sha, len(keys), *keys, *args)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if attempt:
                    raise
                await client.script_load(self.source)
        raise AssertionError("unreachable")


class RedisState:
    def __init__(self, config: StateConfig, on_change: Callable[[bool], None] | None = None) -> None:
        self.config = config
        self.prefix = config.key_prefix
        self.client: Client = make_client(config)
        self.up = False
        self._on_change = on_change
        self._strikes = 0  # failures in a row
        self._last_success = 0.0
        self._listeners: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._probe_task: asyncio.Task[None] | None = None
        self._listener_tasks: set[asyncio.Task[None]] = set()

    def available(self) -> bool:
        """False while the breaker is open: callers then skip Redis without waiting."""
        return self.up

    def on_recovery(self, listener: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._listeners.append(listener)

    def failed(self, exc: BaseException) -> None:
        """A Redis operation failed. A refused or reset connection opens the breaker at
        once; a timeout (which a busy event loop can cause on a healthy Redis) only after
        `TIMEOUT_STRIKES` in a row and no success for that many socket timeouts. The
        breaker stays open until a probe succeeds."""
        self._strikes += 1
        # Timeouts while other operations still succeed are a busy event loop, not a dead Redis.
        quiet = time.monotonic() - self._last_success > self.config.socket_timeout * TIMEOUT_STRIKES
        if self.up and (not _is_timeout(exc) or (self._strikes >= TIMEOUT_STRIKES and quiet)):
            log.warning("shared state (Redis) unreachable; degraded until it answers again",
                        extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})
            self._set(False)

    def succeeded(self) -> None:
        self._strikes = 0
        self._last_success = time.monotonic()

    def _set(self, up: bool) -> None:
        self.up = up
        if self._on_change:
            self._on_change(up)
        if up:
            for listener in self._listeners:
                task = asyncio.get_running_loop().create_task(listener())
                self._listener_tasks.add(task)
                task.add_done_callback(self._listener_tasks.discard)

    async def probe(self) -> bool:
        try:
            async with asyncio.timeout(self.config.socket_timeout * 2):
                await self.client.ping()
        except STATE_ERRORS as exc:
            self.failed(exc)
            return False
        self.succeeded()
        if not self.up:
            if isinstance(self.client, redis.Redis):
                # Idle connections from before the outage are dead: drop them rather than fail on each once.
                await self.client.connection_pool.disconnect(inuse_connections=False)
            log.info("shared state (Redis) reachable", extra={"fields": {"cluster": self.config.cluster}})
            self._set(True)
        return True

    async def start(self) -> None:
        """Probe once (bounded by the socket timeout) and keep probing in the background;
        the gateway serves whether or not Redis answers now."""
        if self._on_change:
            self._on_change(False)  # not ready until the first probe answered
        if not await self.probe():
            log.warning("shared state (Redis) unreachable at start; serving degraded until it answers")
        self._probe_task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL_UP if self.up else PROBE_INTERVAL_DOWN)
            await self.probe()

    async def close(self) -> None:
        tasks = [t for t in (self._probe_task, *self._listener_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()


def _is_timeout(exc: BaseException) -> bool:
    """Slow rather than gone: a timeout, or every pooled connection busy."""
    if isinstance(exc, (TimeoutError, RedisTimeoutError, MaxConnectionsError)):
        return True
    return isinstance(exc, RedisConnectionError) and "No connection available" in str(exc)
