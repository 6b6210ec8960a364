"""The route table with what is derived from it once per load: an adapter per provider,
the models per endpoint, per-provider timeouts and stream framing.

A reload builds a whole new `Runtime` and swaps one reference; a request holds the
`Runtime` it started with until it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import aiohttp

from providers.base import Adapter, StreamDecoder
from providers.registry import KINDS, adapter_factory
from router.config.schema import ModelConfig, RouteTable

log = logging.getLogger("llm_router")


@dataclass(frozen=True, slots=True)
class Runtime:
    table: RouteTable
    adapters: Mapping[str, Adapter | None]  # None: the provider's kind is not built
    models_by_endpoint: Mapping[str, tuple[ModelConfig, ...]]
    timeouts: Mapping[str, aiohttp.ClientTimeout]  # per provider, until the first byte
    framings: Mapping[str, Callable[[], StreamDecoder]]  # per provider: a new stream decoder


def build_runtime(table: RouteTable) -> Runtime:
    adapters: dict[str, Adapter | None] = {}
    timeouts: dict[str, aiohttp.ClientTimeout] = {}
    framings: dict[str, Callable[[], StreamDecoder]] = {}
    for name, provider in table.providers.items():
        factory = adapter_factory(provider.kind)
        adapters[name] = factory(provider.settings) if factory else None
        framings[name] = KINDS[provider.kind].framing
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
        framings=MappingProxyType(framings),
    )


async def refresh_credentials(runtime: Runtime) -> None:
    """Let adapters fetch tokens that come from a command or a file before a request needs them."""
    adapters = [(name, a) for name, a in runtime.adapters.items() if a is not None]
    results = await asyncio.gather(*(a.refresh_credentials() for _, a in adapters), return_exceptions=True)
    for (name, _), result in zip(adapters, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("could not refresh the credentials of provider %s: %s", name, type(result).__name__,
                        extra={"fields": {"provider": name}})
