"""What the Gemini end-to-end tests share: the route table (Gemini API and Vertex AI
providers), calling the gateway and reading what the simulator received and answered,
and an https image host on loopback for the gateway's image fetcher."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from providers.simulators.common import Received
from providers.simulators.gemini import answer_for
from router.gateway import GATEWAY
from router.upstream.fetch import ImageFetcher
from tests.harness import Gateway, table_dict

MODEL = "gemini-1.5-pro"
UPSTREAM_MODEL = "gemini-1.5-pro-002"
EMBEDDING_MODEL = "text-embedding-004"
VERTEX_MODEL = "gemini-1.5-pro-vertex"
VERTEX_EMBEDDING_MODEL = "text-embedding-004-vertex"
UPSTREAM_KEY = "gemini-secret-test"
GEMINI_PATH = f"/v1beta/models/{UPSTREAM_MODEL}"
VERTEX_PATH = f"/v1/projects/my-project/locations/europe-west4/publishers/google/models/{UPSTREAM_MODEL}"
# Retries and cooldowns are the resilience layer's business: off here, so that each
# scripted fault is answered once and error tests do not take the target out.
NO_RESILIENCE: dict[str, Any] = {"max_retries": 0, "cooldown": {"failures": 1000, "duration": 0}}


def gemini_table() -> dict[str, Any]:
    table = table_dict()
    table["providers"]["gemini"].update(NO_RESILIENCE)
    # The Vertex AI flavour: project and location, no key (the demo transform gives the
    # simulator's base URL and a placeholder token).
    table["providers"]["vertex"] = {"kind": "vertex", "base_url": "http://placeholder", "project": "my-project",
                                    "location": "europe-west4", **NO_RESILIENCE}
    table["models"][VERTEX_MODEL] = {"targets": [{"provider": "vertex", "model": UPSTREAM_MODEL}]}
    table["models"][VERTEX_EMBEDDING_MODEL] = {"type": "embedding",
                                               "targets": [{"provider": "vertex", "model": "text-embedding-004"}]}
    return table


def chat(gw: Gateway, model: str = MODEL, **kwargs: Any) -> tuple[Any, Received]:
    """One chat completion (streams are read to the end) and the request the simulator got."""
    sim = gw.sim("gemini")
    before = len(sim.received)
    response = gw.client().chat.completions.create(model=model, **kwargs)
    if kwargs.get("stream"):
        response = list(response)
    assert len(sim.received) == before + 1
    return response, sim.received[-1]


def assert_gemini_call(received: Received, stream: bool = False) -> dict[str, Any]:
    """The Gemini API call: path, action, key header; returns the translated body."""
    action = "streamGenerateContent" if stream else "generateContent"
    assert received.method == "POST" and received.path == f"{GEMINI_PATH}:{action}"
    assert received.query == ({"alt": "sse"} if stream else {})
    assert received.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert "Authorization" not in received.headers
    body: dict[str, Any] = received.json()
    return body


def assert_vertex_call(received: Received, action: str) -> dict[str, Any]:
    """The Vertex AI call: project and location in the path, a bearer token, no API key."""
    assert received.method == "POST" and received.path == f"{VERTEX_PATH}:{action}"
    assert received.headers["Authorization"] == "Bearer simulator-key"
    assert "x-goog-api-key" not in received.headers
    body: dict[str, Any] = received.json()
    return body


def simulator_answer(received: Received) -> dict[str, Any]:
    """What the simulator answered this request (its answers are deterministic)."""
    response: dict[str, Any] = answer_for(received.json(), UPSTREAM_MODEL).response()
    return response


def simulator_usage(received: Received) -> dict[str, int]:
    meta = simulator_answer(received)["usageMetadata"]
    return {"prompt_tokens": meta["promptTokenCount"], "completion_tokens": meta["candidatesTokenCount"],
            "total_tokens": meta["totalTokenCount"]}


def simulator_text(received: Received) -> str:
    parts = simulator_answer(received)["candidates"][0]["content"]["parts"]
    return "".join(part.get("text", "") for part in parts)


def usage_of(response: Any) -> dict[str, int]:
    counts: dict[str, int] = response.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    return counts


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def tool_call_deltas(chunks: list[Any]) -> list[Any]:
    return [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]


# --- an image host on loopback ----------------------------------------------------

IMAGE_HOST = "images.example.com"
JPEG_BYTES = b"\xff\xd8\xff\xe0 a tiny jpeg"
GIF_BYTES = b"GIF89a a tiny gif"
IMAGE_CAP = 4096  # bytes: the fetcher's max_image_bytes in these tests


class _LoopbackDNS(AbstractResolver):
    """IMAGE_HOST is the loopback image host; every other name fails: no real DNS in tests."""

    def __init__(self, port: int) -> None:
        self._port = port

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if host != IMAGE_HOST:
            raise OSError(f"{host} is not resolvable in tests")
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self._port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


class _LoopbackImageFetcher(ImageFetcher):
    """The gateway's own fetcher (every hop still checked by the SSRF guard, size and time
    capped) with the two things a test has to replace: DNS, which points IMAGE_HOST at
    loopback, and TLS trust, which is the loopback host's self-signed certificate."""

    def __init__(self, port: int, trust: ssl.SSLContext) -> None:
        super().__init__(IMAGE_CAP, timeout=5.0, resolver=_LoopbackDNS(port))
        self._trust = trust

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self._resolver, ssl=self._trust, limit=4)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={IMAGE_HOST}",
         "-addext", f"subjectAltName=DNS:{IMAGE_HOST}"],
        check=True, capture_output=True, timeout=30)
    return cert, key


def _image_app() -> web.Application:
    async def jpeg(_: web.Request) -> web.Response:
        return web.Response(body=JPEG_BYTES, content_type="image/jpeg")

    async def gif(_: web.Request) -> web.Response:
        return web.Response(body=GIF_BYTES, content_type="image/gif")

    async def large(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG" + b"\0" * IMAGE_CAP, content_type="image/png")

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/boardwalk.jpg", jpeg)
    app.router.add_get("/anim.gif", gif)
    app.router.add_get("/large.png", large)
    app.router.add_get("/page.html", page)
    app.router.add_get("/redirect", redirect)
    return app


class LoopbackImageHost:
    """`https://images.example.com/...` served on loopback, on the gateway's loop, and
    installed as the gateway's image fetcher until `close()`."""

    def __init__(self, gw: Gateway, directory: Path) -> None:
        self.gw = gw
        cert, key = _self_signed_certificate(directory)
        self._server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_tls.load_cert_chain(cert, key)
        self._trust = ssl.create_default_context(cafile=str(cert))
        self._runner = web.AppRunner(_image_app(), access_log=None)
        self._fetcher: _LoopbackImageFetcher | None = None
        self._replaced: ImageFetcher | None = None

    def open(self) -> LoopbackImageHost:
        self.gw.run(self._start())
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._server_tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        assert self.gw.app is not None
        state = self.gw.app[GATEWAY]
        self._replaced, self._fetcher = state.fetcher, _LoopbackImageFetcher(port, self._trust)
        state.fetcher = self._fetcher

    def close(self) -> None:
        self.gw.run(self._stop())

    async def _stop(self) -> None:
        assert self.gw.app is not None
        self.gw.app[GATEWAY].fetcher = self._replaced
        if self._fetcher is not None:
            await self._fetcher.close()
        await asyncio.wait_for(self._runner.cleanup(), 5)
