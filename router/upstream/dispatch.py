"""Pick a target, call it, retry, fail over, cool down.

Targets are tried in a weighted random order, skipping those cooling down; each is
retried (tenacity: exponential backoff with jitter, or the upstream's `Retry-After`
where it fits the budget) up to its provider's `max_retries`; then the next target,
then the model's fallbacks in order. Targets that were cooling down are tried last,
once each, when nothing else answered. Everything is bounded by the model's
`deadline`, and each provider by its concurrency gate.

Decisions read only the normalised `UpstreamError` (`retryable`, `retry_after`,
`context_window`), never which provider it was. Nothing here writes to the client,
so everything here may be retried: a stream is only handed back once its first
bytes have arrived.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential, wait_random

from providers.base import (
    SHAPE_ERRORS,
    Adapter,
    ApiRequest,
    EmbeddingBatches,
    Operation,
    StreamDecoder,
    StreamTranslator,
    UpstreamCall,
    UpstreamError,
    Usage,
    invalid_param,
)
from providers.registry import KINDS, speaks
from router import metrics
from router.config.runtime import Runtime
from router.config.schema import ModelConfig, ProviderConfig, TargetConfig
from router.exchange import Trace
from router.tokens import exceeds_context
from router.upstream import embeddings
from router.upstream.backpressure import Overloaded
from router.upstream.call import open_response, read_body, transport_error
from router.upstream.cooldown import Guards, TargetState
from router.upstream.fetch import ImageFetcher

log = logging.getLogger("llm_router")

# Backoff between attempts on one target: 0.25 s, 0.5 s, 1 s ... up to 8 s, plus up to 0.25 s of jitter.
BACKOFF = wait_exponential(multiplier=0.25, max=8.0) + wait_random(0, 0.25)
MIN_ATTEMPT = 0.05  # seconds: less budget than this left is not worth another attempt


def _nothing() -> None:
    pass


class CannotTranslate(UpstreamError):
    """The target's translator cannot express the request (a 400 naming the parameter,
    raised before any upstream call): another target, of another protocol, may."""

    @classmethod
    def of(cls, error: UpstreamError) -> CannotTranslate:
        return cls(error.status, error.message, type=error.type, code=error.code, param=error.param,
                   retryable=False)


@dataclass(slots=True)
class Outcome:
    """A target's answer, owned from the attempt to the end of the relay: the open upstream
    response and the provider's slot are given back when the `async with` around it ends."""

    adapter: Adapter
    provider: ProviderConfig
    model: ModelConfig  # the model that answered (the requested one or a fallback)
    request: ApiRequest
    body: bytes | None = None  # a whole answer
    response: aiohttp.ClientResponse | None = None  # an open stream ...
    decoder: StreamDecoder | None = None  # ... its framing, and translator ...
    translator: StreamTranslator | None = None
    first_payloads: list[bytes] = field(default_factory=list)  # ... and its first translated chunks
    answer: tuple[bytes, Usage] | None = None  # an answer joined from several calls, translated already
    release: Callable[[], None] = field(default=_nothing, repr=False)  # gives back the provider slot

    def close(self) -> None:
        """End the upstream stream (at once: a client that left must not keep it running)."""
        if self.response is not None:
            self.response.close()
        release, self.release = self.release, _nothing
        release()

    async def __aenter__(self) -> Outcome:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Budget:
    """The request's deadline, on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.ends - time.monotonic()


def weighted_order(targets: Sequence[TargetConfig]) -> list[TargetConfig]:
    """All targets, in a random order where heavier ones tend to come first."""
    if len(targets) == 1:
        return list(targets)
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted sample without replacement.
    return sorted(targets, key=lambda t: random.random() ** (1.0 / t.weight), reverse=True)


def target_key(target: TargetConfig) -> str:
    """A target is a deployment: its provider account and the upstream model."""
    return f"{target.provider}:{target.model}"


class Connections(Protocol):
    """What dispatch needs of the running gateway: a pooled session per provider, the
    image fetcher, and the cooldowns and gates shared by every request."""

    def session(self, provider: ProviderConfig) -> aiohttp.ClientSession: ...

    def image_fetcher(self) -> ImageFetcher: ...

    def upstream_guards(self) -> Guards: ...


@dataclass(slots=True)
class _Call:
    """One client request's way through the targets."""

    gw: Connections
    rt: Runtime
    guards: Guards
    trace: Trace
    budget: Budget
    requested: str  # the model id the client asked for (and tokenised its input with)
    attempted: set[str] = field(default_factory=set)
    last_error: UpstreamError | None = None  # the last upstream's (or the gateway's own) failure
    refusal: CannotTranslate | None = None  # the first translator that could not take the request


async def dispatch(gw: Connections, rt: Runtime, model: ModelConfig, request: ApiRequest, trace: Trace) -> Outcome:
    call = _Call(gw, rt, gw.upstream_guards(), trace, Budget(model.deadline), model.id)
    queue: deque[ModelConfig] = deque([model, *(rt.table.models[f] for f in model.fallbacks)])
    tried: set[str] = set()
    cooling: list[tuple[ModelConfig, ApiRequest, TargetConfig]] = []
    while queue:
        candidate = queue.popleft()
        if candidate.id in tried or candidate.type is not model.type:
            continue
        tried.add(candidate.id)
        too_long = _too_long(call, model, candidate, request)
        if too_long:
            queue.extendleft(reversed([call.rt.table.models[m] for m in candidate.context_window_fallbacks]))
            continue
        req = request if candidate is model else dataclasses.replace(
            request, public_model=candidate.id, max_output_length=candidate.meta_data.max_output_length)
        for target in weighted_order(candidate.targets):
            if target_key(target) in call.attempted:
                continue
            state = await _check(call, candidate, target)
            if state is TargetState.COOLING:
                cooling.append((candidate, req, target))
                continue
            outcome, fallbacks = await _serve(call, model, candidate, req, target, state)
            if outcome is not None:
                return outcome
            if fallbacks:
                queue.extendleft(reversed(fallbacks))
                break
    # Nothing else answered: try what was cooling down, once each, rather than give up untried.
    for candidate, req, target in cooling:
        if target_key(target) not in call.attempted:
            outcome, _ = await _serve(call, model, candidate, req, target, TargetState.PROBE)
            if outcome is not None:
                return outcome
    raise _final_error(call, model)


async def _serve(call: _Call, requested: ModelConfig, candidate: ModelConfig, req: ApiRequest,
                 target: TargetConfig, state: TargetState) -> tuple[Outcome | None, list[ModelConfig]]:
    """The target's answer; or None and the context-window fallbacks to try next. Raises
    what must reach the client as it is (a non-retryable error, the deadline)."""
    if call.budget.remaining() < MIN_ATTEMPT:
        raise _final_error(call, requested)
    try:
        outcome = await _with_retries(call, candidate, req, target, state)
    except CannotTranslate as refusal:
        if candidate is requested and call.last_error is None:
            raise  # the client's own model cannot take its request: the 400 names the parameter
        _skipped(call, requested, candidate, target, refusal)
        return None, []
    except UpstreamError as error:
        # Kept without its traceback: that holds this frame, which holds `call`, which would
        # hold the error: a cycle keeping the request (an upload, a body) until a full GC.
        call.last_error = error.with_traceback(None)
        if error.context_window and candidate.context_window_fallbacks:
            return None, [call.rt.table.models[m] for m in candidate.context_window_fallbacks]
        if not error.retryable and not isinstance(error, Overloaded):
            raise
        return None, []
    if state is TargetState.PROBE:
        await _closed(call, candidate, target)
    if candidate is not requested:
        metrics.FALLBACKS.labels(requested.id, candidate.id).inc()
    return outcome, []


def _too_long(call: _Call, requested: ModelConfig, candidate: ModelConfig, request: ApiRequest) -> bool:
    """Pre-flight: a prompt that certainly exceeds the candidate's context window is not sent to
    it; it goes to its context-window fallbacks, else the client gets OpenAI's 400."""
    window = candidate.meta_data.max_sequence_length
    floor = exceeds_context(request.operation, request.body, window)
    if not floor:
        return False
    refusal = CannotTranslate(
        400, f"This model's maximum context length is {window} tokens. However, your messages resulted in "
             f"at least {floor} tokens. Please reduce the length of the messages.",
        type="invalid_request_error", code="context_length_exceeded",
        param="messages" if request.operation is Operation.CHAT else "prompt", retryable=False)
    if candidate is requested and not candidate.context_window_fallbacks:
        raise refusal
    if call.refusal is None:
        call.refusal = refusal
    if candidate is not requested:
        metrics.FALLBACKS_SKIPPED.labels(requested.id, candidate.id).inc()
    return True


def _skipped(call: _Call, requested: ModelConfig, candidate: ModelConfig, target: TargetConfig,
             refusal: CannotTranslate) -> None:
    """A fallback (or a further target) that cannot take the request is passed over: what the
    client gets, if nothing serves it, is the upstream failure that led here, not this 400."""
    if call.refusal is None:
        call.refusal = refusal.with_traceback(None)
    metrics.FALLBACKS_SKIPPED.labels(requested.id, candidate.id).inc()
    log.info("fallback skipped: its translator cannot take the request", extra={"fields": {
        "event": "fallback_skipped", "model": requested.id, "fallback": candidate.id,
        "provider": target.provider, "param": refusal.param, "reason": refusal.message}})


def _final_error(call: _Call, model: ModelConfig) -> UpstreamError:
    last = call.last_error
    attempts = call.trace.attempts
    if last is None and call.refusal is not None:
        return call.refusal
    if last is None:
        if call.budget.remaining() < MIN_ATTEMPT:
            return UpstreamError(504, f"No upstream answered for model '{model.id}' within the request's deadline "
                                      f"({call.budget.seconds:g} s).", type="timeout", code="deadline_exceeded",
                                 retryable=False)
        return UpstreamError(503, f"No provider is available for model '{model.id}'.", type="server_error",
                             code="no_provider_available", retryable=False)
    return UpstreamError(last.status, f"The upstream providers of model '{model.id}' failed ({attempts} attempt"
                                      f"{'s' if attempts != 1 else ''}); the last said: {last.message}",
                         type=last.type, code=last.code, param=last.param, retryable=False,
                         retry_after=last.retry_after)


# --- one target, with retries -----------------------------------------------------


@dataclass(slots=True)
class _TargetRun:
    provider: ProviderConfig
    max_attempts: int
    tripped: bool = False  # the target went into a cooldown: stop retrying it


def _retryable(exc: BaseException) -> bool:
    return (isinstance(exc, UpstreamError) and exc.retryable and not exc.context_window
            and not isinstance(exc, Overloaded))


def _wait(retry_state: RetryCallState) -> float:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(error, UpstreamError) and error.retry_after is not None:
        return error.retry_after
    return float(BACKOFF(retry_state))


async def _with_retries(call: _Call, model: ModelConfig, request: ApiRequest, target: TargetConfig,
                        state: TargetState) -> Outcome:
    provider = call.rt.table.providers[target.provider]
    run = _TargetRun(provider, 1 if state is TargetState.PROBE else provider.max_retries + 1)
    call.attempted.add(target_key(target))

    def stop(retry_state: RetryCallState) -> bool:
        # Also stops where Retry-After asks for more than is left: the next target may answer sooner.
        return (run.tripped or retry_state.attempt_number >= run.max_attempts
                or call.budget.remaining() - retry_state.upcoming_sleep < MIN_ATTEMPT)

    def count_retry(retry_state: RetryCallState) -> None:
        call.trace.retries += 1
        metrics.RETRIES.labels(provider.name, model.id).inc()

    try:  # most requests succeed at once: tenacity is only set up for the ones that do not
        return await _counted_attempt(call, model, target, request, run)
    except UpstreamError as error:
        if not _retryable(error) or run.max_attempts == 1 or run.tripped:
            raise
        first_failure: list[UpstreamError] = [error]

    async def next_attempt() -> Outcome:
        if first_failure:  # tenacity's attempt 1 is the failure above: it paces the retry after it
            raise first_failure.pop()
        return await _counted_attempt(call, model, target, request, run)

    retrying = AsyncRetrying(stop=stop, wait=_wait, retry=retry_if_exception(_retryable),
                             before_sleep=count_retry, reraise=True)
    result: Outcome = await retrying(next_attempt)
    return result


async def _counted_attempt(call: _Call, model: ModelConfig, target: TargetConfig, request: ApiRequest,
                           run: _TargetRun) -> Outcome:
    try:
        return await attempt(call, model, target, request)
    except (Overloaded, CannotTranslate):
        raise  # the gateway's own limit or translation, not the provider's failure
    except UpstreamError as error:
        metrics.UPSTREAM_ERRORS.labels(target.provider, model.id, str(error.status)).inc()
        if _retryable(error):
            run.tripped = await _failed(call, model, target, run.provider)
        raise


async def attempt(call: _Call, model: ModelConfig, target: TargetConfig, request: ApiRequest) -> Outcome:
    """One upstream request, within the deadline and a slot of the provider's gate."""
    rt, trace = call.rt, call.trace
    provider = rt.table.providers[target.provider]
    adapter = rt.adapters[target.provider]
    if adapter is None:
        trace.attempts += 1
        raise UpstreamError(503, f"Provider kind '{provider.kind}' is not available in this gateway yet.",
                            type="server_error", code="provider_kind_not_available", retryable=True)
    if request.operation not in KINDS[provider.kind].operations:
        raise CannotTranslate(400, f"The model '{model.id}' does not serve {request.operation.value} requests.",
                              type="invalid_request_error", retryable=False)
    if request.source is not None:
        try:
            request = _for_protocol(request, provider, model)
        except UpstreamError as error:
            raise CannotTranslate.of(error) from None
    if adapter.inlines_image_urls and request.image_urls and not request.images and not request.passthrough:
        fetcher = call.gw.image_fetcher()
        fetched = await asyncio.gather(*(fetcher.fetch(url, "messages") for url in request.image_urls))
        request = dataclasses.replace(request, images=dict(zip(request.image_urls, fetched, strict=True)))
    elif request.image_urls and not adapter.inlines_image_urls:
        # The upstream fetches these itself, from inside our network: where their names lead is checked here.
        await call.gw.image_fetcher().check_forwarded(request.image_urls, "messages")
    try:
        request = await embeddings.for_target(request, call.requested, model.tokenizer)
        pieces = embeddings.split(request, adapter.embedding_batch_size(target.model)) \
            if isinstance(adapter, EmbeddingBatches) else [request]
        upstream_calls = [adapter.to_upstream(piece, target.model) for piece in pieces]
    except UpstreamError as error:
        raise CannotTranslate.of(error) from None
    trace.attempts += 1
    trace.provider, trace.target_model = provider.name, target.model
    gate = call.guards.gates.for_provider(provider.name, provider.max_concurrency, provider.max_queue)
    if len(pieces) > 1:
        return await _in_pieces(call, Outcome(adapter, provider, model, request), pieces, upstream_calls)
    upstream_call = upstream_calls[0]
    started = time.perf_counter()
    try:
        await gate.acquire(call.budget.remaining())  # Overloaded when full or past the deadline
        outcome = Outcome(adapter, provider, model, request, release=gate.release)
        # One timer: the request's deadline, and for a whole answer also the provider's total.
        limit = call.budget.remaining() if request.stream else min(call.budget.remaining(), provider.timeouts.total)
        try:
            async with asyncio.timeout(limit):
                return await _exchange(call, outcome, upstream_call)
        except BaseException:
            outcome.close()
            raise
    except TimeoutError:
        raise UpstreamError(504, "The upstream provider did not answer within the request's deadline.",
                            type="timeout", code="upstream_timeout", retryable=True) from None
    finally:
        trace.upstream_wait += time.perf_counter() - started


def _for_protocol(request: ApiRequest, provider: ProviderConfig, model: ModelConfig) -> ApiRequest:
    """The request as this provider takes it: the client's own body where it speaks the
    client's protocol, else the canonical one (refused where only the former can serve it)."""
    native = speaks(provider.settings, request.source_protocol)
    if not native and request.native_only is not None:
        param, what = request.native_only
        raise invalid_param(param, f"{what} is served only by upstreams that speak {request.source_protocol} "
                                   f"themselves; model '{model.id}' is served by a provider of kind "
                                   f"'{provider.kind}'.")
    return request if native == request.passthrough else dataclasses.replace(request, passthrough=native)


async def _in_pieces(call: _Call, outcome: Outcome, pieces: list[ApiRequest],
                     upstream_calls: list[UpstreamCall]) -> Outcome:
    """An embedding request larger than the upstream's batch: its pieces concurrently, each in a
    slot of the provider's gate, the answers joined in input order with their usage summed."""
    provider, adapter = outcome.provider, outcome.adapter
    gate = call.guards.gates.for_provider(provider.name, provider.max_concurrency, provider.max_queue)
    session = call.gw.session(provider)

    async def one(piece: ApiRequest, upstream_call: UpstreamCall) -> tuple[bytes, Usage]:
        await gate.acquire(call.budget.remaining())
        started = time.perf_counter()
        try:
            async with asyncio.timeout(min(call.budget.remaining(), provider.timeouts.total)):
                response = await open_response(session, upstream_call, piece, adapter, call.rt.timeouts[provider.name])
                body = await read_body(response)
        except TimeoutError:
            raise UpstreamError(504, "The upstream provider did not answer within the request's deadline.",
                                type="timeout", code="upstream_timeout", retryable=True) from None
        finally:
            gate.release()
            call.trace.upstream_wait += time.perf_counter() - started
        return adapter.from_upstream(piece, body)

    answers = await embeddings.all_or_none([functools.partial(one, p, c) for p, c in zip(pieces, upstream_calls,
                                                                                        strict=True)])
    outcome.answer = embeddings.join(outcome.request, answers)
    return outcome


async def _exchange(call: _Call, outcome: Outcome, upstream_call: UpstreamCall) -> Outcome:
    provider, request = outcome.provider, outcome.request
    session = call.gw.session(provider)
    if not request.stream:
        response = await open_response(session, upstream_call, request, outcome.adapter,
                                       call.rt.timeouts[provider.name])
        outcome.body = await read_body(response)
        outcome.close()  # the slot is free once the whole answer is here
        return outcome
    outcome.response = await open_response(session, upstream_call, request, outcome.adapter,
                                           call.rt.timeouts[provider.name])
    content_type = KINDS[provider.kind].stream_content_type
    if outcome.response.content_type != content_type:
        # An HTML error page or a whole JSON answer is no stream: the client gets a 502, not a 200 that fails.
        raise UpstreamError(502, f"The upstream provider answered a stream request with "
                                 f"'{outcome.response.content_type[:60]}', not {content_type}.",
                            code="upstream_not_a_stream", retryable=False)
    outcome.decoder = call.rt.framings[provider.name]()
    outcome.translator = outcome.adapter.stream_translator(request)
    outcome.first_payloads = await _first_payloads(outcome, provider.timeouts.first_byte)
    return outcome


def translate_chunk(decoder: StreamDecoder, translator: StreamTranslator, chunk: bytes) -> list[bytes]:
    out: list[bytes] = []
    try:
        for event in decoder.feed(chunk):
            out.extend(translator.feed(event))
    except SHAPE_ERRORS:  # an event of the wrong shape, or a number out of range (providers/untrusted.py)
        raise malformed_event() from None
    return out


def malformed_event() -> UpstreamError:
    return UpstreamError(502, "The upstream sent a stream event of an unexpected shape.", code="upstream_malformed",
                         retryable=False)


async def _first_payloads(outcome: Outcome, timeout: float) -> list[bytes]:
    """Read and translate until the stream's first chunk for the client exists. Until then
    the attempt may still fail and be retried: an error carried by the first events (an
    Anthropic `overloaded_error`, a Gemini error chunk) raises here like the same HTTP status."""
    response, decoder, translator = outcome.response, outcome.decoder, outcome.translator
    assert response is not None and decoder is not None and translator is not None
    received = False
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await response.content.readany()
                if not chunk:
                    break  # the relay finishes what the body held (its tail)
                received = True
                payloads = translate_chunk(decoder, translator, chunk)
                if payloads or translator.state.done:
                    return payloads
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(exc) from None
    if not received:
        raise UpstreamError(502, "The upstream provider closed the stream before sending anything.",
                            code="upstream_disconnected", retryable=True)
    return []


# --- cooldowns ----------------------------------------------------------------------


def _probe_ttl(provider: ProviderConfig) -> float:
    return provider.timeouts.connect + provider.timeouts.first_byte


async def _check(call: _Call, model: ModelConfig, target: TargetConfig) -> TargetState:
    provider = call.rt.table.providers[target.provider]
    state = await call.guards.cooldowns.check(target_key(target), _probe_ttl(provider))
    labels = (target.provider, model.id)
    if state is TargetState.COOLING and labels not in call.guards.cooling:
        call.guards.cooling.add(labels)
        metrics.COOLING_DOWN.labels(*labels).set(1)
    elif state is TargetState.AVAILABLE and labels in call.guards.cooling:  # another replica's probe closed it
        call.guards.cooling.discard(labels)
        metrics.COOLING_DOWN.labels(*labels).set(0)
    return state


async def _failed(call: _Call, model: ModelConfig, target: TargetConfig, provider: ProviderConfig) -> bool:
    if not await call.guards.cooldowns.failed(target_key(target), provider.cooldown):
        return False
    labels = (target.provider, model.id)
    call.guards.cooling.add(labels)
    metrics.COOLDOWNS.labels(*labels).inc()
    metrics.COOLING_DOWN.labels(*labels).set(1)
    policy = provider.cooldown
    log.warning("target entered cooldown", extra={"fields": {
        "event": "cooldown_start", "provider": target.provider, "target": target.model, "model": model.id,
        "failures": policy.failures, "window_s": policy.window, "duration_s": policy.duration}})
    return True


async def _closed(call: _Call, model: ModelConfig, target: TargetConfig) -> None:
    """A request through a cooldown (the probe) succeeded: the target is back."""
    labels = (target.provider, model.id)
    back = await call.guards.cooldowns.succeeded(target_key(target))
    if labels in call.guards.cooling:
        call.guards.cooling.discard(labels)
        metrics.COOLING_DOWN.labels(*labels).set(0)
    if back:
        log.info("target left cooldown", extra={"fields": {
            "event": "cooldown_end", "provider": target.provider, "target": target.model, "model": model.id}})
