"""Anthropic's Messages API at the gateway's root: `POST /v1/messages` (the same proxy,
dispatch, limits and metering as chat, through the Anthropic ingress) and
`POST /v1/messages/count_tokens`.

The `anthropic` SDK and Claude Code take the gateway's root URL as their base URL and send
the key in `x-api-key` (or `Authorization: Bearer`); every error here is in Anthropic's
shape. Models are found on every endpoint of the table, with the key's model access.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from providers.base import JSON, ApiRequest, Operation, TokenCounter, UpstreamError
from providers.registry import speaks
from router.config.runtime import Runtime
from router.config.schema import KeyConfig, ModelConfig, ModelType
from router.exchange import EXCHANGE
from router.gateway import GATEWAY
from router.http import validate
from router.http.auth import authenticate
from router.http.bodies import read_json
from router.http.handlers import ANY_ENDPOINT, find_model, proxy
from router.http.ingress.anthropic import ANTHROPIC, PROTOCOL
from router.state.metering import UsageRecord, today
from router.tokens import PromptEstimate
from router.upstream.call import open_response, read_body

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
ESTIMATED_HEADER = "x-llm-router-estimated"  # "true": a count of the gateway's own, not the upstream's


def _begin(request: web.Request) -> tuple[Runtime, KeyConfig]:
    ex = request[EXCHANGE]
    ex.errors = ANTHROPIC.errors  # from here on every error is Anthropic's
    ex.endpoint = request.path  # the metrics' and the log's endpoint label
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"])
    rt = request.app[GATEWAY].runtime
    caller = authenticate(rt.table, request, api_key_header=True)
    ex.key_name = caller.name
    return rt, caller


async def messages_handler(request: web.Request) -> web.StreamResponse:
    rt, caller = _begin(request)
    raw = await read_json(request, rt.table.server.request_limits)
    source = ANTHROPIC.source(raw.body, await request.read(), request.headers)  # aiohttp kept the bytes read
    return await proxy(request, rt, ANY_ENDPOINT, caller, Operation.CHAT, ANTHROPIC, raw=raw, source=source)


async def count_tokens_handler(request: web.Request) -> web.StreamResponse:
    """The upstream's own count (Anthropic's, Gemini's countTokens); elsewhere the gateway's estimate, marked."""
    rt, caller = _begin(request)
    raw = await read_json(request, rt.table.server.request_limits)
    # The count takes a Messages request without max_tokens: validated as one that has it.
    canonical = ANTHROPIC.to_canonical({**raw.body, "max_tokens": 1})
    model = _chat_model(rt, caller, validate.model_id(canonical, rt.table.server.request_limits))
    ex = request[EXCHANGE]
    ex.model = model.id
    admission = await request.app[GATEWAY].limiter.admit(caller, model, 0)
    failed = True
    try:
        response = await _count(request, rt, model, canonical, raw.body)
        failed = False
        return response
    finally:
        await admission.settle(0)
        request.app[GATEWAY].meter.record(UsageRecord(
            request_id=ex.request_id, date=today(), key=caller.name, model=model.id, provider=ex.trace.provider,
            prompt_tokens=0, completion_tokens=0, error=failed))


def _chat_model(rt: Runtime, caller: KeyConfig, model_id: str) -> ModelConfig:
    model = find_model(rt, ANY_ENDPOINT, caller, model_id)
    if model.type is not ModelType.CHAT:
        raise validate.bad("model", f"The model '{model_id}' is a {model.type.value} model, not a chat model.")
    return model


async def _count(request: web.Request, rt: Runtime, model: ModelConfig, canonical: JSON, body: JSON) -> web.Response:
    ex = request[EXCHANGE]
    raw = await request.read()
    for target in model.targets:
        provider = rt.table.providers[target.provider]
        adapter = rt.adapters[target.provider]
        if not isinstance(adapter, TokenCounter):
            continue
        source = ANTHROPIC.source(body, raw, request.headers)
        api_request = ApiRequest(Operation.CHAT, canonical, model.id, source=body, source_protocol=PROTOCOL,
                                 source_raw=raw, source_features=source.features,
                                 passthrough=speaks(provider.settings, PROTOCOL))
        try:
            call = adapter.count_tokens_call(api_request, target.model)
        except UpstreamError:
            continue  # not countable there (an image URL that upstream would need inline): the estimate
        ex.trace.provider, ex.trace.target_model = provider.name, target.model
        session = request.app[GATEWAY].session(provider)
        assert adapter is not None
        upstream = await open_response(session, call, api_request, adapter, rt.timeouts[provider.name])
        count = adapter.count_of(await read_body(upstream))
        return web.Response(body=orjson.dumps({"input_tokens": count}), content_type="application/json")
    estimate = PromptEstimate(Operation.CHAT, canonical).value
    return web.Response(body=orjson.dumps({"input_tokens": estimate}), content_type="application/json",
                        headers={ESTIMATED_HEADER: "true"})


def add_routes(app: web.Application) -> None:
    """Before the endpoints' catch-all: `/v1` may also be an OpenAI endpoint prefix of the table."""
    app.router.add_route("*", MESSAGES_PATH, messages_handler)
    app.router.add_route("*", COUNT_TOKENS_PATH, count_tokens_handler)
