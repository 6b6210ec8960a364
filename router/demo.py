"""`llm-router demo`: the route table with every provider replaced by the bundled
simulator of its own wire protocol, on loopback. Nothing leaves the machine."""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable

from aiohttp import web

from providers.base import Operation
from providers.registry import KINDS
from providers.settings import Secret
from router.config.schema import ModelType, RouteTable, replace_providers

log = logging.getLogger("llm_router")

def embedding_dimensions(table: RouteTable) -> dict[str, int]:
    """Upstream model name -> the dimension `/models` advertises (meta_data.hidden_size),
    for every embedding model's targets: what its simulator must answer with."""
    dimensions: dict[str, int] = {}
    for model in table.models.values():
        if model.type is ModelType.EMBEDDING and model.meta_data.hidden_size > 0:
            for target in model.targets:
                dimensions[target.model] = model.meta_data.hidden_size
    return dimensions


async def start_simulators(kinds: set[str], host: str = "127.0.0.1",
                           dimensions: dict[str, int] | None = None) -> tuple[dict[str, str], list[web.AppRunner]]:
    """Start one simulator per protocol module needed; return base URL per kind.
    `dimensions` (upstream model -> embedding dimension) is shared with the simulators,
    not copied: `simulated(urls, dimensions)` refills it from each table it transforms."""
    urls: dict[str, str] = {}
    started: dict[str, str] = {}
    runners: list[web.AppRunner] = []
    for kind in sorted(kinds):
        module_name, suffix = KINDS[kind].simulator, KINDS[kind].simulator_path
        if module_name not in started:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                log.warning("no simulator for kind %s yet; its models answer 503", kind)
                continue
            embeds = Operation.EMBEDDINGS in KINDS[kind].operations  # its simulator answers embeddings
            app = module.create_app(dimensions=dimensions) if embeds else module.create_app()
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            started[module_name] = f"http://{host}:{port}"
            runners.append(runner)
            log.info("simulator started", extra={"fields": {"simulator": module_name, "url": started[module_name]}})
        urls[kind] = started[module_name] + suffix
    return urls, runners


def simulated(urls: dict[str, str], dimensions: dict[str, int] | None = None) -> Callable[[RouteTable], RouteTable]:
    """A table transform pointing every provider at its simulator (and, given the
    simulators' `dimensions`, telling them the embedding dimensions of this table)."""

    def transform(table: RouteTable) -> RouteTable:
        if dimensions is not None:
            dimensions.clear()
            dimensions.update(embedding_dimensions(table))
        providers = {}
        for name, provider in table.providers.items():
            if provider.kind not in urls:
                providers[name] = provider
                continue
            settings = dataclasses.replace(
                provider.settings, base_url=urls[provider.kind], simulated=True,
                api_key=provider.settings.api_key or Secret("simulator-key"), token_file=None, token_command=None)
            providers[name] = dataclasses.replace(provider, settings=settings)
        return replace_providers(table, providers)

    return transform
