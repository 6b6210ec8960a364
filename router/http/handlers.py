"""The OpenAI-compatible handlers: parse, authorize, dispatch, respond.

Every endpoint prefix of the route table (`/v1`, `/v2`, `/vision`, ...) serves the
same routes; the prefixes come from the table, so a reload can add one.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from providers.base import ApiRequest, Operation, Usage
from router.config.runtime import Runtime
from router.config.schema import KeyConfig, ModelConfig, ModelType
from router.errors import GatewayError
from router.exchange import EXCHANGE, Exchange
from router.gateway import GATEWAY
from router.http import responses_api, validate
from router.http.auth import authenticate
from router.http.bodies import read_json, read_multipart
from router.http.ingress.base import Ingress, Source
from router.http.ingress.openai import OPENAI
from router.http.ingress.responses import RESPONSES
from router.http.usage_api import usage_rows
from router.state import turns
from router.state.limits import output_reservation, reserves_tokens
from router.state.metering import UsageRecord, today
from router.tokens import PromptEstimate, estimate_completion_tokens, requested_output_tokens
from router.upstream.dispatch import Outcome, dispatch
from router.upstream.relay import StreamRelay

log = logging.getLogger("llm_router.http")

_AUDIO = frozenset({Operation.TRANSCRIPTION, Operation.TRANSLATION})  # multipart: an audio file and fields
MAX_FORM_PARTS = 64  # transcription forms have a handful of short fields
MAX_FORM_FIELD_BYTES = 64 * 1024

_OPERATION_MODEL_TYPE = {Operation.CHAT: ModelType.CHAT, Operation.COMPLETIONS: ModelType.CHAT,
                         Operation.EMBEDDINGS: ModelType.EMBEDDING, Operation.TRANSCRIPTION: ModelType.TRANSCRIPTION,
                         Operation.RERANK: ModelType.RERANK, Operation.TRANSLATION: ModelType.TRANSCRIPTION}
ANY_ENDPOINT = ""
_USE_INSTEAD = {ModelType.CHAT: "/chat/completions", ModelType.EMBEDDING: "/embeddings",
                ModelType.TRANSCRIPTION: "/audio/transcriptions", ModelType.RERANK: "/rerank"}


def model_not_found(model_id: str) -> GatewayError:
    # The same answer whether the model does not exist or is not dedicated to this key.
    return GatewayError(404, f"The model '{model_id}' does not exist or you do not have access to it.",
                        param="model", code="model_not_found")


def find_model(rt: Runtime, endpoint: str, caller: KeyConfig, model_id: str) -> ModelConfig:
    model = rt.table.models.get(model_id)
    # ANY_ENDPOINT: a protocol served at the root (the Messages API) finds models on every endpoint.
    if model is None or (endpoint != ANY_ENDPOINT and endpoint not in model.endpoints) or not caller.allows(model_id):
        raise model_not_found(model_id)
    return model


def _model_card(model: ModelConfig, rt: Runtime) -> dict[str, object]:
    owned_by = model.owned_by
    if not owned_by:
        provider = rt.table.providers[model.targets[0].provider]
        owned_by = f"llm-router simulator of {provider.kind}" if provider.settings.simulated else provider.kind
    meta = model.meta_data
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": owned_by,
            "meta_data": {"max_sequence_length": meta.max_sequence_length, "hidden_size": meta.hidden_size,
                          "max_output_length": meta.max_output_length}}


async def list_models(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.Response:
    cards = [_model_card(m, rt) for m in rt.models_by_endpoint.get(endpoint, ()) if caller.allows(m.id)]
    return web.json_response({"object": "list", "data": cards})


async def get_model(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.Response:
    model_id = request.path[len(endpoint) + len("/models/"):]
    return web.json_response(_model_card(find_model(rt, endpoint, caller, model_id), rt))


async def own_usage(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.Response:
    rows = await usage_rows(request, request.app[GATEWAY].meter, key=caller.name)
    return web.json_response({"object": "list", "data": rows})


async def _prepare(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig,
                   operation: Operation, ingress: Ingress, raw: ApiRequest | None,
                   source: Source | None) -> tuple[ApiRequest, ModelConfig]:
    limits = rt.table.server.request_limits
    if raw is None:
        reader = read_multipart if operation in _AUDIO else read_json
        raw = await reader(request, limits)
    body = ingress.to_canonical(raw.body)
    model_id = validate.model_id(body, limits)
    ex = request[EXCHANGE]
    ex.model = model_id
    model = find_model(rt, endpoint, caller, model_id)
    body = _drop_params(body, model, ex)
    if model.type is not _OPERATION_MODEL_TYPE[operation]:
        raise validate.bad("model", f"The model '{model_id}' is a {model.type.value} model; use "
                                    f"{endpoint}{_USE_INSTEAD[model.type]} with it.", "wrong_endpoint")
    if operation is Operation.COMPLETIONS and not model.completions:
        raise validate.bad("model", f"Raw completions are only available for open-source models; '{model_id}' "
                                    f"does not offer them. Use {endpoint}/chat/completions instead.",
                           "completions_not_supported")
    stream = include_usage = False
    image_urls: list[str] = []
    if operation in (Operation.CHAT, Operation.COMPLETIONS):
        stream, include_usage = validate.stream_flags(body)
    if operation is Operation.CHAT:
        image_urls = validate.chat(body, limits)
    elif operation in validate.VALIDATORS:
        validate.VALIDATORS[operation](body)
    validate.output_limit(body, model.meta_data.max_output_length)
    ex.stream = stream
    return ApiRequest(operation, body, model.id, stream, include_usage, image_urls=tuple(image_urls),
                      form=raw.form, file=raw.file, max_output_length=model.meta_data.max_output_length,
                      source=source.body if source else None, source_protocol=source.protocol if source else "openai",
                      native_only=source.native_only if source else None, source_raw=source.raw if source else b"",
                      source_features=source.features if source else ()), model


def _drop_params(body: dict[str, Any], model: ModelConfig, ex: Exchange) -> dict[str, Any]:
    """The request without the parameters the route table drops for this model (said in a
    log line and in the x-llm-router-dropped-params header, never silently)."""
    dropped = tuple(name for name in model.drop_params if name in body)
    if not dropped:
        return body
    ex.dropped_params = dropped
    log.info("dropped parameters %s for model %s (drop_params)", ",".join(dropped), model.id)
    return {name: value for name, value in body.items() if name not in dropped}


def _headers(ex: Exchange, outcome: Outcome, extra: dict[str, str]) -> dict[str, str]:
    headers = {**extra, "x-request-id": ex.request_id, "x-llm-router-provider": outcome.provider.name,
               "x-llm-router-model": outcome.model.id}
    if ex.dropped_params:
        headers["x-llm-router-dropped-params"] = ",".join(ex.dropped_params)
    return headers


async def _respond(outcome: Outcome, ex: Exchange, headers: dict[str, str],
                   prompt_estimate: PromptEstimate, ingress: Ingress) -> web.Response:
    if outcome.answer is not None:  # joined from several upstream calls, translated already
        body, usage = outcome.answer
    else:
        assert outcome.body is not None
        body, usage = outcome.adapter.from_upstream(outcome.request, outcome.body)
    outcome.body = None  # the raw answer is not needed while the client is sent the translated one
    if usage.estimated:
        usage = Usage(prompt_estimate.value, estimate_completion_tokens(body), estimated=True,
                      search_units=usage.search_units)
    ex.usage = usage
    content_type = "application/json"
    if outcome.request.operation in _AUDIO and not body.lstrip().startswith(b"{"):
        content_type = "text/plain"
    return web.Response(body=ingress.answer(body, outcome.request), content_type=content_type, headers=headers)


async def proxy(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig,
                operation: Operation, ingress: Ingress, *, raw: ApiRequest | None = None,
                source: Source | None = None) -> web.StreamResponse:
    """One request to a model, in any client protocol: `raw` is the body when the handler read
    it already, `source` the client's own body for upstreams that speak its protocol."""
    gw = request.app[GATEWAY]
    ex = request[EXCHANGE]
    api_request, model = await _prepare(request, rt, endpoint, caller, operation, ingress, raw, source)
    if operation is Operation.CHAT:
        await turns.restore(gw.turns, caller.name, api_request)
    prompt_estimate = PromptEstimate(operation, api_request.body)
    reserve = 0
    if reserves_tokens(caller, model):
        reserve = prompt_estimate.value
        if operation in (Operation.CHAT, Operation.COMPLETIONS):
            reserve += requested_output_tokens(api_request.body, output_reservation(caller, model))
    admission = await gw.limiter.admit(caller, model, reserve)
    relay: StreamRelay | None = None
    failed = True
    try:
        outcome = await dispatch(gw, rt, model, api_request, ex.trace)
        ex.model = outcome.model.id
        headers = _headers(ex, outcome, dict(admission.headers))
        keep_turns = functools.partial(turns.keep, gw.turns, caller.name, outcome.request)
        async with outcome:  # the upstream response and the provider's slot, until the answer is written
            if outcome.response is None:  # a whole answer
                response: web.StreamResponse = await _respond(outcome, ex, headers, prompt_estimate, ingress)
                await keep_turns()
            else:
                relay = StreamRelay(ex, outcome, prompt_estimate, ingress.client_stream(outcome.request), keep_turns)
                response = await relay.run(request, headers)
        failed = ex.status >= 400
        return response
    finally:
        if relay is not None:
            ex.usage = relay.usage
        usage = ex.usage or Usage()
        await admission.settle(usage.total_tokens)
        gw.meter.record(UsageRecord(
            request_id=ex.request_id, date=today(), key=caller.name, model=ex.model, provider=ex.trace.provider,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, error=failed,
            estimated=usage.estimated, reasoning_tokens=usage.reasoning_tokens, cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens, search_units=usage.search_units))


EndpointHandler = Callable[[web.Request, Runtime, str, KeyConfig], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str | tuple[str, ...]
    handler: EndpointHandler
    ingress: Ingress = OPENAI  # the protocol the client speaks there: its errors' shape from the start


def _proxy_for(operation: Operation, ingress: Ingress = OPENAI) -> Route:
    async def handler(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.StreamResponse:
        return await proxy(request, rt, endpoint, caller, operation, ingress)

    return Route("POST", handler, ingress)


async def _create_response(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.StreamResponse:
    return await responses_api.create(request, rt, endpoint, caller, proxy)


ROUTES: dict[str, Route] = {
    "/chat/completions": _proxy_for(Operation.CHAT),
    "/completions": _proxy_for(Operation.COMPLETIONS),
    "/embeddings": _proxy_for(Operation.EMBEDDINGS),
    "/audio/transcriptions": _proxy_for(Operation.TRANSCRIPTION),
    "/rerank": _proxy_for(Operation.RERANK),  # Cohere/Jina-shaped in and out: the identity ingress
    "/audio/translations": _proxy_for(Operation.TRANSLATION),
    "/models": Route("GET", list_models),
    "/usage": Route("GET", own_usage),
    "/responses": Route("POST", _create_response, RESPONSES),
}
_PATTERN_ROUTES = (
    (re.compile(r"^/models/[^/]+$"), Route("GET", get_model)),
    (re.compile(r"^/responses/[^/]+$"), Route(("GET", "DELETE"), responses_api.retrieve_or_delete, RESPONSES)),
    (re.compile(r"^/responses/[^/]+/input_items$"), Route("GET", responses_api.input_items, RESPONSES)),
)


def _route(rest: str) -> Route | None:
    route = ROUTES.get(rest)
    if route is not None:
        return route
    return next((r for pattern, r in _PATTERN_ROUTES if pattern.match(rest)), None)


def _split_endpoint(rt: Runtime, path: str) -> tuple[str, str] | None:
    """`/v2/chat/completions` -> (`/v2`, `/chat/completions`), longest endpoint first."""
    slash = path.find("/", 1)
    if slash > 0 and path[:slash] in rt.models_by_endpoint:
        return path[:slash], path[slash:]
    for endpoint in sorted(rt.models_by_endpoint, key=len, reverse=True):
        if path.startswith(endpoint + "/"):
            return endpoint, path[len(endpoint):]
    return None


def _refuse_method_of_fixed_route(request: web.Request) -> None:
    """`TRACE /healthz` is a 405 with `Allow`, not the catch-all's 404."""
    for resource in request.app.router.resources():
        if resource.canonical == request.path:
            allowed = {route.method for route in resource}
            raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))


async def endpoint_handler(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    rt = gw.runtime  # this request keeps this table to its end, whatever reloads happen meanwhile
    split = _split_endpoint(rt, request.path)
    if split is None:
        _refuse_method_of_fixed_route(request)
        raise web.HTTPNotFound()
    endpoint, rest = split
    route = _route(rest)
    if route is None:
        raise web.HTTPNotFound()
    ex = request[EXCHANGE]
    ex.errors = route.ingress.errors
    allowed = (route.method,) if isinstance(route.method, str) else route.method
    if request.method not in allowed:
        raise web.HTTPMethodNotAllowed(request.method, list(allowed))
    ex.endpoint = endpoint
    caller = authenticate(rt.table, request)
    ex.key_name = caller.name
    return await route.handler(request, rt, endpoint, caller)

