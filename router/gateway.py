"""The running gateway: the current `Runtime` and the long-lived resources (one pooled
ClientSession per provider, cooldowns and gates, limiter, meter, the shared Redis client).

Sessions of unchanged providers are kept across reloads; those of removed providers
are closed once the requests that use them have ended.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from router import metrics
from router.config.runtime import Runtime, build_runtime, refresh_credentials
from router.config.schema import ProviderConfig, RouteTable
from router.state.limits import Limiter, LocalLimiter
from router.state.metering import LocalMeter, Meter
from router.state.responses_store import LocalResponseStore, RedisResponseStore, ResponseStore
from router.upstream.backpressure import Gates
from router.upstream.cooldown import Guards, cooldown_store
from router.upstream.fetch import ImageFetcher

log = logging.getLogger("llm_router")


def _session_for(provider: ProviderConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=provider.max_concurrency, limit_per_host=0, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    # trust_env=False: provider traffic never goes through a proxy picked up from the environment.
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                 skip_auto_headers=("User-Agent",))


@dataclass(slots=True)
class _RetiredPool:
    """A pool no longer current: requests that started before `generation` may still use it."""

    name: str
    session: aiohttp.ClientSession
    config: ProviderConfig
    generation: int
    backstop: asyncio.TimerHandle | None = None


@dataclass
class Gateway:
    runtime: Runtime
    limiter: Limiter = field(default_factory=LocalLimiter)
    meter: Meter = field(default_factory=LocalMeter)
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    fetcher: ImageFetcher | None = None
    redis_ready: bool = True  # False while a configured Redis is unreachable
    redis: redis.asyncio.Redis | RedisCluster | None = None  # the one shared-state client (None: in-process)
    guards: Guards | None = None  # cooldowns and concurrency gates, made at the first request
    stored_responses: ResponseStore | None = None  # the Responses API's `store`, made at its first use
    _session_configs: dict[str, ProviderConfig] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)
    # Each swap starts a generation; requests in flight are counted per generation they
    # started in, so a retired pool closes as soon as no older request is left.
    _generation: int = 0
    _inflight: dict[int, int] = field(default_factory=dict)
    _retired: list[_RetiredPool] = field(default_factory=list)

    def enter(self) -> int:
        """A request starts on the current runtime; pass the result to `leave` when it ends."""
        generation = self._generation
        self._inflight[generation] = self._inflight.get(generation, 0) + 1
        return generation

    def leave(self, generation: int) -> None:
        left = self._inflight[generation] - 1
        if left:
            self._inflight[generation] = left
        else:
            del self._inflight[generation]
            if self._retired:
                self._close_unused_pools()

    def session(self, provider: ProviderConfig) -> aiohttp.ClientSession:
        name = provider.name
        current = self.sessions.get(name)
        if (current is not None and not current.closed
                and self._session_configs[name].max_concurrency == provider.max_concurrency):
            return current
        for pool in self._retired:  # a request still running on a replaced table
            if (pool.name == name and not pool.session.closed
                    and pool.config.max_concurrency == provider.max_concurrency):
                return pool.session
        session = _session_for(provider)
        serving = self.runtime.table.providers.get(name)
        if serving is not None and serving.max_concurrency == provider.max_concurrency:
            self.sessions[name] = session
            self._session_configs[name] = provider
        else:  # first use, by an older request, of a provider the current table dropped
            self._retired.append(_RetiredPool(name, session, provider, self._generation))
        return session

    def upstream_guards(self) -> Guards:
        """The cooldowns and gates, made at the first request: by then the app has connected
        the shared Redis client (`redis`), if one is configured."""
        if self.guards is None:
            state = self.runtime.table.state
            store = cooldown_store(self.redis, state.key_prefix, state.socket_timeout, lambda: self.redis_ready)
            self.guards = Guards(store, Gates())
        return self.guards

    def response_store(self) -> ResponseStore:
        """Where `store: true` keeps Responses API answers: Redis when configured, else this process."""
        if self.stored_responses is None:
            state = self.runtime.table.state
            self.stored_responses = (
                RedisResponseStore(self.redis, state.key_prefix, state.responses_retention) if self.redis is not None
                else LocalResponseStore(state.responses_retention, state.responses_max_stored))
        return self.stored_responses

    @property
    def table(self) -> RouteTable:
        return self.runtime.table

    def image_fetcher(self) -> ImageFetcher:
        if self.fetcher is None:
            self.fetcher = ImageFetcher(self.runtime.table.server.request_limits.max_image_bytes)
        return self.fetcher

    def swap(self, table: RouteTable) -> Runtime:
        """Serve `table` from now on; requests in flight finish on the one they started with."""
        new = build_runtime(table)
        self.runtime = new
        self._generation += 1
        for name in list(self.sessions):
            changed = table.providers.get(name)
            if changed is None or changed.max_concurrency != self._session_configs[name].max_concurrency:
                self._retire(name, self.sessions.pop(name), self._session_configs.pop(name))
        metrics.table_loaded(table)
        self._close_unused_pools()
        task = asyncio.get_running_loop().create_task(refresh_credentials(new))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return new

    def _retire(self, name: str, session: aiohttp.ClientSession, config: ProviderConfig) -> None:
        """Close a replaced pool once the requests that may use it have ended; as a backstop,
        after the provider's total timeout whatever happens."""
        pool = _RetiredPool(name, session, config, self._generation)
        pool.backstop = asyncio.get_running_loop().call_later(config.timeouts.total, self._close_pool, pool)
        self._retired.append(pool)

    def _close_unused_pools(self) -> None:
        oldest = min(self._inflight, default=self._generation)
        for pool in [pool for pool in self._retired if oldest >= pool.generation]:
            self._close_pool(pool)

    def _close_pool(self, pool: _RetiredPool) -> None:
        if pool.backstop is not None:
            pool.backstop.cancel()
        self._retired = [other for other in self._retired if other is not pool]
        log.info("closing the connection pool of a replaced provider", extra={"fields": {"provider": pool.name}})
        task = asyncio.get_running_loop().create_task(pool.session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self.guards is not None:
            await self.guards.cooldowns.close()
        for pool in list(self._retired):
            self._close_pool(pool)
        await asyncio.gather(*self._closing)
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()
        if self.fetcher:
            await self.fetcher.close()
        await self.meter.close()


GATEWAY = web.AppKey("gateway", Gateway)
