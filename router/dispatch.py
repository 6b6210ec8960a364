"""Pick a target, call it, fail over: targets by weight, then the model's fallbacks.

Decisions read only the normalised `UpstreamError` (`retryable`, `context_window`),
never which provider it was. Nothing here writes to the client, so everything here
may be retried: a stream is only handed back once its first bytes have arrived.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from providers.base import Adapter, ApiRequest, UpstreamError
from router import metrics
from router.config import ModelConfig, ProviderConfig, TargetConfig
from router.runtime import Gateway, Runtime
from router.upstream import open_response, read_body, transport_error


@dataclass(slots=True)
class Trace:
    """What the attempts of one client request did, for metrics and the log."""

    attempts: int = 0
    provider: str = ""
    target_model: str = ""
    upstream_wait: float = 0.0  # seconds spent waiting on upstreams


@dataclass(slots=True)
class Outcome:
    adapter: Adapter
    provider: ProviderConfig
    model: ModelConfig  # the model that answered (the requested one or a fallback)
    request: ApiRequest
    body: bytes | None = None  # a whole answer
    response: aiohttp.ClientResponse | None = None  # an open stream ...
    first_chunk: bytes = b""  # ... and its first bytes


def weighted_order(targets: Sequence[TargetConfig]) -> list[TargetConfig]:
    """All targets, in a random order where heavier ones tend to come first."""
    if len(targets) == 1:
        return list(targets)
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted sample without replacement.
    return sorted(targets, key=lambda t: random.random() ** (1.0 / t.weight), reverse=True)


async def dispatch(gw: Gateway, rt: Runtime, model: ModelConfig, request: ApiRequest, trace: Trace) -> Outcome:
    queue: deque[ModelConfig] = deque([model, *(rt.table.models[f] for f in model.fallbacks)])
    tried: set[str] = set()
    last_error: UpstreamError | None = None
    while queue:
        candidate = queue.popleft()
        if candidate.id in tried or candidate.type is not model.type:
            continue
        tried.add(candidate.id)
        req = request if candidate is model else dataclasses.replace(
            request, public_model=candidate.id, max_output_length=candidate.meta_data.max_output_length)
        for target in weighted_order(candidate.targets):
            try:
                outcome = await attempt(gw, rt, candidate, target, req, trace)
            except UpstreamError as error:
                metrics.UPSTREAM_ERRORS.labels(target.provider, candidate.id, str(error.status)).inc()
                last_error = error
                if error.context_window and candidate.context_window_fallbacks:
                    queue.extendleft(rt.table.models[m] for m in reversed(candidate.context_window_fallbacks))
                    break
                if not error.retryable:
                    raise
                continue
            if candidate is not model:
                metrics.FALLBACKS.labels(model.id, candidate.id).inc()
            return outcome
    raise last_error or UpstreamError(503, f"No provider is available for model '{model.id}'.", retryable=False)


async def attempt(gw: Gateway, rt: Runtime, model: ModelConfig, target: TargetConfig, request: ApiRequest,
                  trace: Trace) -> Outcome:
    provider = rt.table.providers[target.provider]
    adapter = rt.adapters[target.provider]
    trace.attempts += 1
    trace.provider, trace.target_model = provider.name, target.model
    if adapter is None:
        raise UpstreamError(503, f"Provider kind '{provider.kind}' is not available in this gateway yet.",
                            type="server_error", code="provider_kind_not_available", retryable=True)
    if request.operation not in adapter.operations:
        raise UpstreamError(400, f"The model '{model.id}' does not serve {request.operation.value} requests.",
                            type="invalid_request_error", retryable=False)
    if adapter.inlines_image_urls and request.image_urls and not request.images:
        fetcher = gw.image_fetcher()
        fetched = await asyncio.gather(*(fetcher.fetch(url, "messages") for url in request.image_urls))
        request = dataclasses.replace(request, images=dict(zip(request.image_urls, fetched, strict=True)))
    call = adapter.build_call(request, target.model)
    started = time.perf_counter()
    try:
        response = await open_response(gw.session(provider), call, request, adapter, rt.timeouts[provider.name])
        if not request.stream:
            return Outcome(adapter, provider, model, request, body=await read_body(response))
        return Outcome(adapter, provider, model, request, response=response,
                       first_chunk=await _first_chunk(response, provider.timeouts.first_byte))
    finally:
        trace.upstream_wait += time.perf_counter() - started


async def _first_chunk(response: aiohttp.ClientResponse, timeout: float) -> bytes:
    try:
        async with asyncio.timeout(timeout):
            chunk = await response.content.readany()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        response.close()
        raise transport_error(exc) from None
    if not chunk:
        response.close()
        raise UpstreamError(502, "The upstream provider closed the stream before sending anything.",
                            code="upstream_disconnected", retryable=True)
    return chunk
