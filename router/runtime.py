"""The running gateway: the current route table with what is derived from it, and the
long-lived resources (one pooled ClientSession per provider, limiter, meter).

A reload builds a whole new `Runtime` and swaps one reference; a request holds the
`Runtime` it started with until it ends. Sessions of unchanged providers are kept;
those of removed providers are closed once the requests that use them have ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import aiohttp

from providers.base import Adapter
from providers.registry import adapter_factory
from router import metrics
from router.config import ModelConfig, ProviderConfig, RouteTable
from router.fetch import ImageFetcher
from router.limits import Limiter, LocalLimiter
from router.metering import LocalMeter, Meter

log = logging.getLogger("llm_router")


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RouteTable
    adapters: Mapping[str, Adapter | None]  # None: the provider's kind is not built
    models_by_endpoint: Mapping[str, tuple[ModelConfig, ...]]
    timeouts: Mapping[str, aiohttp.ClientTimeout]  # per provider, until the first byte


def build_runtime(table: RouteTable) -> Runtime:
    adapters: dict[str, Adapter | None] = {}
    timeouts: dict[str, aiohttp.ClientTimeout] = {}
    for name, provider in table.providers.items():
        factory = adapter_factory(provider.kind)
        adapters[name] = factory(provider) if factory else None
        t = provider.timeouts
        timeouts[name] = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, sock_read=t.first_byte)
    by_endpoint: dict[str, list[ModelConfig]] = {}
    for model in table.models.values():
        for endpoint in model.endpoints:
            by_endpoint.setdefault(endpoint, []).append(model)
    return Runtime(
        table=table,
        adapters=MappingProxyType(adapters),
        models_by_endpoint=MappingProxyType({ep: tuple(ms) for ep, ms in by_endpoint.items()}),
        timeouts=MappingProxyType(timeouts),
    )


def _session_for(provider: ProviderConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=provider.max_concurrency, limit_per_host=0, ttl_dns_cache=300,
                                     enable_cleanup_closed=True)
    # trust_env=False: provider traffic never goes through a proxy picked up from the environment.
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True,
                                 skip_auto_headers=("User-Agent",))


@dataclass
class Gateway:
    runtime: Runtime
    limiter: Limiter = field(default_factory=LocalLimiter)
    meter: Meter = field(default_factory=LocalMeter)
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)
    fetcher: ImageFetcher | None = None
    redis_ready: bool = True  # False while a configured Redis is unreachable
    _session_configs: dict[str, ProviderConfig] = field(default_factory=dict)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def session(self, provider: ProviderConfig) -> aiohttp.ClientSession:
        session = self.sessions.get(provider.name)
        if session is None or session.closed:
            session = self.sessions[provider.name] = _session_for(provider)
            self._session_configs[provider.name] = provider
        return session

    def image_fetcher(self) -> ImageFetcher:
        if self.fetcher is None:
            self.fetcher = ImageFetcher(self.runtime.table.server.request_limits.max_image_bytes)
        return self.fetcher

    def swap(self, table: RouteTable) -> Runtime:
        """Serve `table` from now on; requests in flight finish on the one they started with."""
        new = build_runtime(table)
        old_providers = self.runtime.table.providers
        self.runtime = new
        for name in list(self.sessions):
            changed = table.providers.get(name)
            if changed is None or changed.max_concurrency != self._session_configs[name].max_concurrency:
                self._retire(name, self.sessions.pop(name), old_providers[name].timeouts.total)
        metrics.CONFIG_INFO.clear()
        metrics.CONFIG_INFO.labels(table.version).set(1)
        return new

    def _retire(self, name: str, session: aiohttp.ClientSession, grace: float) -> None:
        """Close a removed provider's pool after the requests still using it could have ended."""
        self._session_configs.pop(name, None)

        async def close_later() -> None:
            await asyncio.sleep(grace)
            await session.close()

        task = asyncio.get_running_loop().create_task(close_later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()
        if self.fetcher:
            await self.fetcher.close()
        await self.meter.close()
