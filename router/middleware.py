"""The one middleware around every request: request id, in-flight count, the single
place where any exception becomes OpenAI's JSON error, and the request's metrics and
log line once it has ended (streams included)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from providers.base import UpstreamError, Usage
from router import metrics
from router.dispatch import Trace
from router.errors import GatewayError, error_response

log = logging.getLogger("llm_router")
access_log = logging.getLogger("llm_router.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CLIENT_CLOSED = 499  # nginx's code for a client that went away before the answer


@dataclass(slots=True)
class Exchange:
    """One client request as the gateway saw it."""

    request_id: str
    started: float
    endpoint: str = ""
    key_name: str = ""
    model: str = ""  # the public model that answered, or the one asked for
    status: int = 0
    stream: bool = False
    usage: Usage | None = None
    ttft: float | None = None
    trace: Trace = field(default_factory=Trace)
    gateway_seconds: float | None = None  # overhead, when the handler measured it


EXCHANGE = web.RequestKey("exchange", Exchange)

_HTTP_MESSAGES = {
    404: "Unknown request URL: {method} {path}. Please check the URL for typos.",
    405: "Method {method} is not allowed for {path}.",
    413: "The request body is larger than the gateway accepts (max_body_bytes).",
}


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    template = _HTTP_MESSAGES.get(exc.status, exc.reason)
    message = template.format(method=request.method, path=request.path)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    code = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status)
    return error_response(exc.status, message, code=code, headers=headers)


def upstream_error_response(error: UpstreamError) -> web.Response:
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    status = error.client_status()
    return web.Response(status=status, body=_dumps(error), content_type="application/json", headers=headers)


def _dumps(error: UpstreamError) -> bytes:
    import orjson

    return orjson.dumps(error.to_openai())


@web.middleware
async def gateway_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("x-request-id", "")
    exchange = Exchange(incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex, time.perf_counter())
    request[EXCHANGE] = exchange
    metrics.INFLIGHT.inc()
    response: web.StreamResponse | None = None
    try:
        try:
            response = await handler(request)
        except GatewayError as exc:
            response = error_response(exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code,
                                      headers=exc.headers)
        except UpstreamError as exc:
            response = upstream_error_response(exc)
        except web.HTTPException as exc:
            response = _from_http_exception(exc, request)
        except Exception:
            log.exception("unexpected error", extra={"request_id": exchange.request_id})
            response = error_response(500, "The gateway failed to handle this request; it has been logged "
                                           f"as {exchange.request_id}.", type="server_error", code="internal_error")
        if not response.prepared:
            response.headers["x-request-id"] = exchange.request_id
        if not exchange.status:
            exchange.status = response.status
        return response
    finally:
        metrics.INFLIGHT.dec()
        if not exchange.status:
            exchange.status = CLIENT_CLOSED
        if exchange.endpoint:
            _observe(exchange)


def _observe(ex: Exchange) -> None:
    duration = time.perf_counter() - ex.started
    provider = ex.trace.provider or "none"
    metrics.REQUESTS.labels(ex.endpoint, ex.model, provider, ex.key_name or "anonymous", str(ex.status)).inc()
    if ex.trace.attempts:
        metrics.REQUEST_DURATION.labels(ex.model, provider).observe(duration)
        overhead = ex.gateway_seconds if ex.gateway_seconds is not None else duration - ex.trace.upstream_wait
        metrics.OVERHEAD.observe(max(0.0, overhead))
    if ex.ttft is not None:
        metrics.TIME_TO_FIRST_TOKEN.labels(ex.model, provider).observe(ex.ttft)
    if ex.usage and ex.key_name:
        metrics.TOKENS.labels(ex.model, ex.key_name, "prompt").inc(ex.usage.prompt_tokens)
        metrics.TOKENS.labels(ex.model, ex.key_name, "completion").inc(ex.usage.completion_tokens)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info("request", extra={"fields": {
            "request_id": ex.request_id, "key": ex.key_name, "endpoint": ex.endpoint, "model": ex.model,
            "provider": ex.trace.provider, "target": ex.trace.target_model, "status": ex.status,
            "stream": ex.stream, "attempts": ex.trace.attempts,
            "prompt_tokens": ex.usage.prompt_tokens if ex.usage else None,
            "completion_tokens": ex.usage.completion_tokens if ex.usage else None,
            "ttft_ms": round(ex.ttft * 1000, 2) if ex.ttft is not None else None,
            "duration_ms": round(duration * 1000, 2),
            "overhead_ms": round((ex.gateway_seconds if ex.gateway_seconds is not None
                                  else duration - ex.trace.upstream_wait) * 1000, 3),
        }})
