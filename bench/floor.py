"""The floor of our stack: a bare aiohttp passthrough.

It parses the JSON body, checks the client's key, forwards the request over one
pooled ClientSession and streams the answer back, and nothing else: what any
Python gateway on aiohttp costs at least. Same event loop (uvloop) and JSON
library (orjson) as llm-router, so the difference between the two is the
gateway's own work.

    python bench/floor.py --port 18010 --upstream http://127.0.0.1:18001 --key sk-bench-client-key
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

UPSTREAM_KEY = "sk-upstream-bench"
SESSION = web.AppKey("session", ClientSession)
UPSTREAM = web.AppKey("upstream", str)
KEYS = web.AppKey("keys", frozenset)


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def forward(request: web.Request) -> web.StreamResponse:
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth[7:] not in request.app[KEYS]:
        return _error(401, "unknown key", "invalid_api_key")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "body is not JSON", "invalid_json")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return _error(400, "model is required", "missing_model")
    url = request.app[UPSTREAM] + request.path_qs
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    async with request.app[SESSION].post(url, data=raw, headers=headers) as upstream:
        if upstream.content_type != "text/event-stream":
            return web.Response(status=upstream.status, body=await upstream.read(),
                                content_type=upstream.content_type)
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        async for data in upstream.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response


async def health(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    connector = TCPConnector(limit=0, keepalive_timeout=60)
    async with ClientSession(connector=connector, timeout=ClientTimeout(total=600)) as session:
        app[SESSION] = session
        yield


def create_app(upstream: str, keys: frozenset[str]) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app[KEYS] = keys
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/{tail:.*}", forward)
    app.router.add_get("/health", health)
    return app


async def serve(host: str, port: int, app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"floor on http://{host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18010)
    parser.add_argument("--upstream", default="http://127.0.0.1:18001")
    parser.add_argument("--key", action="append", default=None, help="a client key (repeatable)")
    args = parser.parse_args()
    app = create_app(args.upstream, frozenset(args.key or ["sk-bench-client-key"]))
    import uvloop

    uvloop.run(serve(args.host, args.port, app))


if __name__ == "__main__":
    main()
