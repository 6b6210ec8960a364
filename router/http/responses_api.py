"""OpenAI's Responses API endpoints: `POST {ep}/responses` (through the same proxy as chat,
with the Responses ingress), and the stored responses: `GET`/`DELETE {ep}/responses/{id}`,
`GET {ep}/responses/{id}/input_items`.

`store` (true unless the client says false) keeps the Response object with its input and
the conversation before it, under the caller's key: `previous_response_id` continues it,
and another key (or an expired or unstored id) gets the same 404.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from aiohttp import web

from providers.base import JSON, ApiRequest, Operation
from providers.registry import RESPONSES_PROTOCOL, speaks
from router.config.runtime import Runtime
from router.config.schema import KeyConfig
from router.errors import GatewayError
from router.gateway import GATEWAY
from router.http.bodies import read_json
from router.http.ingress.base import Ingress, Source
from router.http.ingress.responses import ResponsesCall
from router.state.responses_store import ResponseStore, StoredResponse, StoreUnavailable

log = logging.getLogger("llm_router")
MAX_LIST = 100  # OpenAI's bound on `limit`


class Proxy(Protocol):
    """handlers.proxy: the one way a request reaches a model (limits, metering, log, relay)."""

    def __call__(self, request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig, operation: Operation,
                 ingress: Ingress, *, raw: ApiRequest | None = ...,
                 source: Source | None = ...) -> Awaitable[web.StreamResponse]: ...


def not_found(response_id: str) -> GatewayError:
    return GatewayError(404, f"Response with id '{response_id}' not found.", param="response_id",
                        code="response_not_found")


def _unavailable() -> GatewayError:
    return GatewayError(503, "The store of responses is unavailable; try again shortly.", code="store_unavailable")


async def _stored(store: ResponseStore, caller: KeyConfig, response_id: str) -> StoredResponse:
    try:
        record = await store.get(caller.name, response_id)
    except StoreUnavailable:
        raise _unavailable() from None
    if record is None:
        raise not_found(response_id)
    return record


def _native_model(rt: Runtime, body: JSON) -> bool:
    model_id = body.get("model")
    model = rt.table.models.get(model_id) if isinstance(model_id, str) else None
    return model is not None and all(
        speaks(rt.table.providers[t.provider].settings, RESPONSES_PROTOCOL) for t in model.targets)


async def create(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig,
                 proxy: Proxy) -> web.StreamResponse:
    raw = await read_json(request, rt.table.server.request_limits)
    body = raw.body
    store = request.app[GATEWAY].response_store()
    previous_id = body.get("previous_response_id")
    if previous_id is not None and (not isinstance(previous_id, str) or not previous_id):
        raise GatewayError(400, "Invalid type for 'previous_response_id': expected a string.",
                           param="previous_response_id")
    if body.get("store") is not None and not isinstance(body.get("store"), bool):
        raise GatewayError(400, "Invalid type for 'store': expected a boolean.", param="store")
    history = (await _stored(store, caller, previous_id)).conversation() if previous_id else []
    call = ResponsesCall(body, history, previous_id, _native_model(rt, body))
    source = Source(call.source(), RESPONSES_PROTOCOL, call.native_only)
    response = await proxy(request, rt, endpoint, caller, Operation.CHAT, call, raw=raw, source=source)
    result = call.result
    if body.get("store", True) and result is not None and isinstance(result.get("id"), str):
        # The client has its answer either way; the store logs why it could not keep it.
        with contextlib.suppress(StoreUnavailable):
            await store.put(caller.name, result["id"], StoredResponse(result, call.input, history))
    return response


def _response_id(request: web.Request, endpoint: str) -> str:
    parts = request.path[len(endpoint):].split("/")  # ['', 'responses', id, ...]
    return parts[2]


async def retrieve_or_delete(request: web.Request, rt: Runtime, endpoint: str,
                             caller: KeyConfig) -> web.StreamResponse:
    response_id = _response_id(request, endpoint)
    store = request.app[GATEWAY].response_store()
    if request.method == "DELETE":
        try:
            deleted = await store.delete(caller.name, response_id)
        except StoreUnavailable:
            raise _unavailable() from None
        if not deleted:
            raise not_found(response_id)
        return web.json_response({"id": response_id, "object": "response", "deleted": True})
    return web.json_response((await _stored(store, caller, response_id)).response)


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", "20")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST:
        raise GatewayError(400, f"Invalid 'limit': expected an integer between 1 and {MAX_LIST}.", param="limit")
    return int(text)


async def input_items(request: web.Request, rt: Runtime, endpoint: str, caller: KeyConfig) -> web.StreamResponse:
    record = await _stored(request.app[GATEWAY].response_store(), caller, _response_id(request, endpoint))
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise GatewayError(400, "Invalid 'order': expected 'asc' or 'desc'.", param="order")
    items: list[Any] = list(record.input) if order == "asc" else list(reversed(record.input))
    after = request.query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    limit = _limit(request)
    page = items[:limit]
    return web.json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                              "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit})
