"""The application factory: middleware, routes, and the long-lived resources opened
and closed with the app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router import metrics
from router.config.reload import RELOADER, Reloader
from router.config.runtime import build_runtime, refresh_credentials
from router.config.schema import FailurePolicy, RouteTable
from router.exchange import IN_FLIGHT, InFlight
from router.gateway import GATEWAY, Gateway
from router.http import admin, messages_api, protocol_errors
from router.http.auth import FAILED_AUTH, FailedAuthLimiter
from router.http.handlers import endpoint_handler
from router.http.middleware import gateway_middleware, name_the_server
from router.state.redis import RedisState
from router.state.redis_limits import RedisLimiter
from router.state.redis_meter import RedisMeter
from router.state.turns import RedisTurnStore

log = logging.getLogger("llm_router")
OPENAPI_PATH = Path(__file__).parent / "http" / "openapi.json"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Health contract: a Redis outage makes the replica unready under fail_closed only;
    under fail_open it serves on local limits and says so here."""
    gateway = request.app[GATEWAY]
    table = gateway.runtime.table
    if not gateway.redis_ready:
        reason = "The shared state (Redis) is unreachable."
        if table.state.on_failure is FailurePolicy.FAIL_OPEN:
            return web.json_response({"status": "ready", "state": "degraded", "reason": reason + " Serving on "
                                      "local limits (fail_open).", "version": table.version})
        return web.json_response({"status": "not ready", "state": "degraded", "reason": reason,
                                  "version": table.version,
                                  "error": {"message": reason, "type": "server_error", "param": None,
                                            "code": "state_unavailable"}}, status=503)
    return web.json_response({"status": "ready", "state": "shared" if table.state.redis_url else "local",
                              "version": table.version})


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi_handler(request: web.Request) -> web.StreamResponse:
    if not OPENAPI_PATH.exists():
        raise web.HTTPNotFound()
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/json"})


def create_app(table: RouteTable, config_path: str | Path | None = None,
               transform: Callable[[RouteTable], RouteTable] | None = None,
               gateway: Gateway | None = None, serve_metrics: bool = True) -> web.Application:
    """`transform` is applied to every table loaded later (demo: point providers at simulators).
    `serve_metrics=False` leaves /metrics to a separate port (`serve --metrics-port`)."""
    protocol_errors.install()
    limits = table.server.request_limits
    app = web.Application(middlewares=[gateway_middleware], client_max_size=limits.max_body_bytes,
                          handler_args={"max_field_size": limits.max_header_bytes,
                                        "max_line_size": limits.max_header_bytes})
    app[GATEWAY] = gateway or Gateway(build_runtime(table))
    app[FAILED_AUTH] = FailedAuthLimiter()
    app[IN_FLIGHT] = InFlight()
    app.on_response_prepare.append(name_the_server)
    app[RELOADER] = Reloader(app[GATEWAY], Path(config_path or table.path), transform or (lambda t: t))
    metrics.table_loaded(table)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if serve_metrics:
        app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/openapi.json", openapi_handler)
    app.router.add_post("/admin/reload", admin.reload_handler)
    app.router.add_get("/admin/usage", admin.usage_handler)
    app.router.add_get("/admin/config", admin.config_handler)
    messages_api.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", endpoint_handler)
    app.cleanup_ctx.append(_gateway_resources)
    return app


async def _gateway_resources(app: web.Application) -> AsyncIterator[None]:
    """The state backend: Redis when configured (limits and usage shared by every
    replica), else in-process. Closed after in-flight requests ended: usage flushed."""
    gateway = app[GATEWAY]
    config = gateway.runtime.table.state
    state: RedisState | None = None
    if config.redis_url is None:
        log.warning("no state.redis_url: rate limits and usage are per process (one instance only)")
        metrics.STATE_DEGRADED.set(0)
    else:
        state = RedisState(config, on_change=lambda up: _state_changed(gateway, up))
        limiter = RedisLimiter(state, config.on_failure, config.expected_replicas)
        meter = RedisMeter(state, config.spool_path)
        gateway.redis, gateway.limiter, gateway.meter = state.client, limiter, meter
        gateway.turns = RedisTurnStore(state.client, config.key_prefix)
        meter.start()
        await state.start()
    await refresh_credentials(gateway.runtime)
    yield
    await gateway.close()  # closes the meter: flushes its queue to Redis or the spool
    if state is not None:
        await limiter.close()
        await state.close()


def _state_changed(gateway: Gateway, up: bool) -> None:
    gateway.redis_ready = up
    metrics.STATE_DEGRADED.set(0 if up else 1)
