"""A hostile upstream on loopback: it answers each request with what the test scripted
(status, content type, body), and a gateway whose providers of every protocol point at it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from router.config.schema import parse
from router.gateway import GATEWAY
from tests.harness import ADMIN_KEY, KEY_A, Gateway

# The public model of each protocol, served only by the hostile upstream.
MODELS = {"openai-compatible": "h-openai", "anthropic": "h-anthropic", "gemini": "h-gemini"}


@dataclass(frozen=True)
class Scripted:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class HostileUpstream:
    answers: list[Scripted] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def script(self, status: int, content_type: str, body: bytes | dict[str, Any], times: int = 1,
               headers: dict[str, str] | None = None) -> None:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        extra = tuple((headers or {}).items())
        self.answers.extend(Scripted(status, content_type, raw, extra) for _ in range(times))

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.paths.append(request.path)
        answer = self.answers.pop(0) if self.answers else Scripted(500, "text/plain", b"nothing scripted")
        return web.Response(status=answer.status, body=answer.body,
                            headers={"Content-Type": answer.content_type, **dict(answer.headers)})


def table(base_url: str) -> dict[str, Any]:
    providers = {kind: {"kind": kind, "base_url": base_url, "api_key": "upstream-key-test", "max_retries": 0}
                 for kind in MODELS}
    models = {model: {"meta_data": {"max_sequence_length": 8192, "max_output_length": 1024},
                      "targets": [{"provider": kind, "model": "upstream-model"}]} for kind, model in MODELS.items()}
    return {"admin": {"key": ADMIN_KEY}, "providers": providers, "models": models,
            "keys": [{"name": "team-a", "key": KEY_A, "models": ["*"]}]}


def hostile_gateway() -> Iterator[tuple[Gateway, HostileUpstream]]:
    """The harness gateway, then pointed at the hostile upstream (the harness points every provider at a simulator)."""
    upstream = HostileUpstream()
    with Gateway(table("http://placeholder")) as gw:
        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", upstream.handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            gw.runners.insert(0, runner)  # stopped after the gateway
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            gw.app[GATEWAY].swap(parse(table(f"http://127.0.0.1:{port}"), gw.file))  # type: ignore[index]

        gw.run(start())
        yield gw, upstream


class AccessLines(logging.Handler):
    """The access log's lines, as the gateway wrote them (from its own thread)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.fields: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.fields.append(dict(getattr(record, "fields", {})))
