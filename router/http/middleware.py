"""The one middleware around every request: request id, in-flight count, the single
place where any exception becomes OpenAI's JSON error, and the request's metrics and
log line once it has ended (streams included)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from providers.base import UpstreamError
from router import metrics
from router.config.runtime import Runtime
from router.errors import ErrorShape, GatewayError
from router.exchange import CLIENT_CLOSED, EXCHANGE, IN_FLIGHT, SHUTTING_DOWN, Exchange
from router.gateway import GATEWAY, Gateway

log = logging.getLogger("llm_router")
access_log = logging.getLogger("llm_router.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
DEBUG_CONTENT_BYTES = 65536  # per body, with logging.debug_content
UNKNOWN_MODEL = "unknown"  # the model label of requests for ids the table does not have
# Probes and scrapes: not client requests, so not in the in-flight gauge (contract, Health).
NOT_CLIENT_REQUESTS = frozenset({"/healthz", "/readyz", "/metrics"})
SERVER_NAME = "llm-router"  # the Server header: no library or version for a scanner to match


_HTTP_MESSAGES = {
    404: "Unknown request URL: {method} {path}. Please check the URL for typos.",
    405: "Method {method} is not allowed for {path}.",
    413: "The request body is larger than the gateway accepts (max_body_bytes).",
}


def _from_http_exception(exc: web.HTTPException, request: web.Request, errors: ErrorShape) -> web.Response:
    template = _HTTP_MESSAGES.get(exc.status, exc.reason)
    message = template.format(method=request.method, path=request.path)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    code = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
    return errors.error_response(exc.status, message, code=code, headers=headers)


def upstream_error_response(error: UpstreamError, errors: ErrorShape) -> web.Response:
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return errors.error_response(error.client_status(), error.message, type=error.type, param=error.param,
                                 code=error.code, headers=headers)


def _gateway(app: web.Application) -> Gateway | None:
    return app.get(GATEWAY)


def _new_request_id() -> str:
    # An id, not a secret: the process's PRNG, without a system call per request.
    return f"{random.getrandbits(128):032x}"


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("x-request-id", "")
    exchange = Exchange(incoming if _REQUEST_ID.match(incoming) else _new_request_id(), time.perf_counter())
    request[EXCHANGE] = exchange
    gateway = _gateway(request.app)
    # Taken before the handler runs, with no await in between: the handler reads the same
    # runtime, and its pools stay open until every request of its generation has left.
    generation = gateway.enter() if gateway is not None else 0
    runtime = gateway.runtime if gateway is not None else None
    in_flight = request.app.get(IN_FLIGHT)
    if in_flight is not None:
        in_flight.enter()
    counted = request.path not in NOT_CLIENT_REQUESTS
    if counted:
        metrics.INFLIGHT.inc()
    response: web.StreamResponse | None = None
    try:
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            if in_flight is None or not in_flight.ended_by_shutdown():
                raise  # the client went away
            response = exchange.errors.error_response(503, SHUTTING_DOWN, code="shutting_down",
                                                      headers={"Retry-After": "1"})
        except GatewayError as exc:
            response = exchange.errors.error_response(exc.status, exc.message, type=exc.type, param=exc.param,
                                                      code=exc.code, headers=exc.headers)
        except UpstreamError as exc:
            response = upstream_error_response(exc, exchange.errors)
        except web.HTTPException as exc:
            response = _from_http_exception(exc, request, exchange.errors)
        except Exception:
            log.exception("unexpected error", extra={"request_id": exchange.request_id})
            response = exchange.errors.error_response(
                500, f"The gateway failed to handle this request; it has been logged as {exchange.request_id}.",
                type="server_error", code="internal_error")
        if not response.prepared:
            response.headers["x-request-id"] = exchange.request_id
        if not exchange.status:
            exchange.status = response.status
        if exchange.endpoint and runtime is not None and runtime.table.logging.debug_content:
            exchange.content = await _content(request, response)
        return response
    finally:
        if counted:
            metrics.INFLIGHT.dec()
        if in_flight is not None:
            in_flight.leave()
        if gateway is not None:
            gateway.leave(generation)
        if not exchange.status:
            exchange.status = CLIENT_CLOSED
        if exchange.endpoint:
            _observe(exchange, request.method, runtime)


async def name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: aiohttp would send `Server: Python/3.x aiohttp/3.y`."""
    response.headers["Server"] = SERVER_NAME


def _observe(ex: Exchange, method: str, runtime: Runtime | None) -> None:
    """The log line, then the metrics; neither may raise out of the middleware's `finally`
    (that would turn an answer already made into a 500 and lose the line)."""
    duration = time.perf_counter() - ex.started
    overhead = max(0.0, ex.gateway_seconds if ex.gateway_seconds is not None else duration - ex.trace.upstream_wait)
    try:
        _log_line(ex, method, duration, overhead)
    except Exception:
        log.exception("the access log line could not be written", extra={"request_id": ex.request_id})
    try:
        _count(ex, runtime, duration, overhead)
    except Exception:
        log.exception("the request's metrics could not be updated", extra={"request_id": ex.request_id})


async def _content(request: web.Request, response: web.StreamResponse) -> dict[str, str]:
    """The request's and a whole answer's bodies, for `logging.debug_content` only
    (a stream's text was written as it came and is not kept)."""
    content = {"request_body": (await request.read())[:DEBUG_CONTENT_BYTES].decode(errors="replace")}
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        content["response_body"] = response.body[:DEBUG_CONTENT_BYTES].decode(errors="replace")
    return content


def _count(ex: Exchange, runtime: Runtime | None, duration: float, overhead: float) -> None:
    provider = ex.trace.provider or "none"
    # The model label takes ids of the table only: a client asking for random ids must
    # not create a series each (the log line keeps what was asked).
    model = ex.model if runtime is None or not ex.model or ex.model in runtime.table.models else UNKNOWN_MODEL
    metrics.labelled(metrics.REQUESTS, ex.endpoint, model, provider, ex.key_name or "anonymous", str(ex.status)).inc()
    if ex.trace.attempts:
        metrics.labelled(metrics.REQUEST_DURATION, model, provider).observe(duration)
        metrics.OVERHEAD.observe(overhead)
    if ex.ttft is not None:
        metrics.labelled(metrics.TIME_TO_FIRST_TOKEN, model, provider).observe(ex.ttft)
    if ex.usage and ex.key_name:
        # Counter.inc raises on a negative amount: an upstream's bad count must not fail the request.
        metrics.labelled(metrics.TOKENS, model, ex.key_name, "prompt").inc(max(0, ex.usage.prompt_tokens))
        metrics.labelled(metrics.TOKENS, model, ex.key_name, "completion").inc(max(0, ex.usage.completion_tokens))


def _log_line(ex: Exchange, method: str, duration: float, overhead: float) -> None:
    if access_log.isEnabledFor(logging.INFO):
        # Names, numbers and ids only: never a key, a prompt or a completion, unless
        # `logging.debug_content` asked for the bodies (ex.content).
        access_log.info("request", extra={"fields": {
            "request_id": ex.request_id, "method": method, "key": ex.key_name, "endpoint": ex.endpoint,
            "model": ex.model, "provider": ex.trace.provider, "target": ex.trace.target_model, "status": ex.status,
            "stream": ex.stream, "attempts": ex.trace.attempts, "retries": ex.trace.retries,
            "prompt_tokens": ex.usage.prompt_tokens if ex.usage else None,
            "completion_tokens": ex.usage.completion_tokens if ex.usage else None,
            "tokens_estimated": ex.usage.estimated if ex.usage else None,
            "ttft_ms": round(ex.ttft * 1000, 2) if ex.ttft is not None else None,
            "duration_ms": round(duration * 1000, 2),
            "overhead_ms": round(overhead * 1000, 3),
            **(ex.content or {}),
        }})
