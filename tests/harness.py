"""A real gateway on a free loopback port, in front of the bundled simulators, run in a
background thread so that tests can use the stock (synchronous) `openai` client
exactly as the API guide's examples do."""

from __future__ import annotations

import asyncio
import copy
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import openai
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from providers.registry import KINDS
from providers.simulators.common import SIMULATOR_STATE, SimulatorState
from router.app import create_app
from router.config.schema import RouteTable, parse
from router.demo import simulated, start_simulators
from router.gateway import GATEWAY
from router.upstream.fetch import ImageFetcher, PublicOnlyResolver

KEY_A = "sk-team-a-test"
KEY_B = "sk-team-b-test"
ADMIN_KEY = "sk-admin-test"
UPSTREAM_SECRET = "sk-upstream-secret-test"

DEFAULT_TABLE: dict[str, Any] = {
    "admin": {"key": ADMIN_KEY},
    "providers": {
        "openai": {"kind": "openai", "base_url": "http://placeholder/v1", "api_key": UPSTREAM_SECRET},
        "azure": {"kind": "azure", "base_url": "http://placeholder", "api_key": "azure-secret-test",
                  "api_version": "2024-10-21"},
        "local": {"kind": "openai-compatible", "base_url": "http://placeholder/v1"},
        "anthropic": {"kind": "anthropic", "base_url": "http://placeholder", "api_key": "anthropic-secret-test"},
        "gemini": {"kind": "gemini", "base_url": "http://placeholder", "api_key": "gemini-secret-test"},
    },
    "models": {
        "gpt-4o": {"meta_data": {"max_sequence_length": 128000, "max_output_length": 16384},
                   "targets": [{"provider": "azure", "model": "gpt-4o-deployment"}]},
        "gpt-4o-mini": {"meta_data": {"max_sequence_length": 128000, "max_output_length": 16384},
                        "targets": [{"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}]},
        "Llama-3.1-70B-Instruct": {"completions": True,
                                   "meta_data": {"max_sequence_length": 131072, "max_output_length": 8192},
                                   "targets": [{"provider": "local", "model": "meta-llama/Llama-3.1-70B-Instruct"}]},
        "jina-embeddings-v2-base-de": {
            "type": "embedding", "meta_data": {"max_sequence_length": 8192, "hidden_size": 768},
            "targets": [{"provider": "local", "model": "jinaai/jina-embeddings-v2-base-de"}]},
        "whisper-large-v3": {"type": "transcription",
                             "targets": [{"provider": "local", "model": "openai/whisper-large-v3"}]},
        "llava-v1.6-vicuna-13b": {"endpoints": ["/vision"],
                                  "meta_data": {"max_sequence_length": 4096, "max_output_length": 4096},
                                  "targets": [{"provider": "local", "model": "liuhaotian/llava-v1.6-vicuna-13b"}]},
        "claude-3-5-sonnet": {"meta_data": {"max_sequence_length": 200000, "max_output_length": 8192},
                              "targets": [{"provider": "anthropic", "model": "claude-3-5-sonnet-20240620"}]},
        "gemini-1.5-pro": {"meta_data": {"max_sequence_length": 2097152, "max_output_length": 8192},
                           "targets": [{"provider": "gemini", "model": "gemini-1.5-pro-002"}]},
        "text-embedding-004": {"type": "embedding", "meta_data": {"max_sequence_length": 2048, "hidden_size": 768},
                               "targets": [{"provider": "gemini", "model": "text-embedding-004"}]},
    },
    "keys": [
        {"name": "team-a", "key": KEY_A, "models": ["*"]},
        {"name": "team-b", "key": KEY_B, "models": ["Llama-3.1-70B-Instruct"]},
    ],
}


# The public image hosts tests name, so that the gateway's SSRF guard resolves them without real DNS.
TEST_DNS = {"upload.wikimedia.org": "198.35.26.112"}


class StaticDNS(AbstractResolver):
    """DNS for tests: the names in TEST_DNS, every other name unknown."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in TEST_DNS:
            raise OSError(f"{host}: unknown to the test DNS")
        return [ResolveResult(hostname=host, host=TEST_DNS[host], port=port, family=socket.AF_INET, proto=0,
                              flags=0)]

    async def close(self) -> None:
        return None


def table_dict(**overrides: Any) -> dict[str, Any]:
    """A deep copy of the default test table with top-level sections replaced."""
    table = copy.deepcopy(DEFAULT_TABLE)
    table.update(copy.deepcopy(overrides))
    return table


class Gateway:
    """Start with `with Gateway(table_dict()) as gw:`; `gw.client()` is an `openai.OpenAI`."""

    def __init__(self, table: dict[str, Any], file: str = "routes.test.yaml") -> None:
        self.table_data = table
        self.file = file
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.app: web.Application | None = None
        self.port = 0
        self.table: RouteTable | None = None
        self._clients: dict[tuple[str, str], openai.OpenAI] = {}
        self._extra_clients: list[openai.OpenAI] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Gateway:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        for client in [*self._clients.values(), *self._extra_clients]:
            client.close()
        self.run(self._stop(), timeout=90)  # a loaded machine: closing flushes usage and closes Redis clients
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        table = parse(self.table_data, self.file)
        dimensions: dict[str, int] = {}  # each embedding model's meta_data.hidden_size, as in the demo
        urls, self.runners = await start_simulators({p.kind for p in table.providers.values()},
                                                    dimensions=dimensions)
        self.transform: Callable[[RouteTable], RouteTable] = simulated(urls, dimensions)
        self.table = self.transform(table)
        self.app = create_app(self.table, self.file, self.transform)
        self.app[GATEWAY].fetcher = ImageFetcher(self.table.server.request_limits.max_image_bytes,
                                                 resolver=PublicOnlyResolver(StaticDNS()))
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.runners.append(runner)

    async def _stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()

    def url(self, endpoint: str = "/v2") -> str:
        return f"http://127.0.0.1:{self.port}{endpoint}"

    def client(self, key: str = KEY_A, endpoint: str = "/v2", **kwargs: Any) -> openai.OpenAI:
        """A stock client, reused per key and endpoint and closed with the gateway."""
        if kwargs:
            client = openai.OpenAI(api_key=key, base_url=self.url(endpoint), max_retries=0, **kwargs)
            self._extra_clients.append(client)
            return client
        if (key, endpoint) not in self._clients:
            self._clients[(key, endpoint)] = openai.OpenAI(api_key=key, base_url=self.url(endpoint), max_retries=0)
        return self._clients[(key, endpoint)]

    def sim(self, kind: str) -> SimulatorState:
        """The simulator serving providers of `kind`: what it received, faults to script."""
        module = KINDS[kind].simulator
        for runner in self.runners:
            if runner.app.get(SIMULATOR_STATE) is not None and _module_of(runner.app) == module:
                return runner.app[SIMULATOR_STATE]
        raise KeyError(kind)


def _module_of(app: web.Application) -> str:
    for route in app.router.routes():
        handler = getattr(route, "handler", None)
        if handler is not None and hasattr(handler, "__module__"):
            return str(handler.__module__)
    return ""
