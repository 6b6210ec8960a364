"""A simulator of Anthropic's Messages API, strict the way the real one is.

POST /v1/messages (x-api-key, anthropic-version) and the Vertex AI path
(`/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict` or
`:streamRawPredict`, Bearer auth, `anthropic_version` in the body, no `model`).

It refuses what the real API refuses (a missing max_tokens, a `system` role inside
messages, roles that do not alternate, malformed tool or image blocks, a tool_result
without its tool_use, tool blocks in a request that defines no tools), answers
deterministically, calls tools when asked about them (two at once when asked about
two), and streams the real event sequence. With `thinking` on it thinks first, in a block whose
signature it checks when the block comes back; it caches prompt prefixes marked with
`cache_control` and reports the cache counts (anthropic_cache.py); it counts tokens
(`/v1/messages/count_tokens`, Vertex's `count-tokens:rawPredict`) and refuses
`anthropic-beta` features it does not know, as the API does (anthropic_features.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from providers.simulators.anthropic_cache import PromptCache
from providers.simulators.anthropic_checks import VERTEX_VERSION, Rejected, validate_request
from providers.simulators.anthropic_features import FeatureRejected, check_betas
from providers.simulators.anthropic_modern import (
    ModernRejected,
    structured_text,
    thinking_block,
    thinking_on,
    validate_modern,
)
from providers.simulators.common import (
    Fault,
    SimulatorState,
    count_tokens,
    endless_body,
    new_state_app,
    record,
    reply_text,
    split_words,
    tool_arguments,
)

JSON = dict[str, Any]
ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip
PROMPT_CACHE = web.AppKey("prompt_cache", PromptCache)
ERROR_MESSAGES = {429: "Number of request tokens has exceeded your per-minute rate limit", 529: "Overloaded"}


def create_app() -> web.Application:
    app = new_state_app()
    app[PROMPT_CACHE] = PromptCache()
    app.router.add_post("/v1/messages", messages_endpoint)
    app.router.add_post("/v1/messages/count_tokens", count_tokens_endpoint)
    app.router.add_post(
        "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}", vertex_endpoint
    )
    return app


def error_body(status: int, message: str) -> JSON:
    error_type = ERROR_TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_simulated"}


def error_response(status: int, message: str, retry_after: float | None = None) -> web.Response:
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return web.json_response(error_body(status, message), status=status, headers=headers)


def fault_error_response(fault: Fault) -> web.Response:
    status = fault.status or 500
    return error_response(status, ERROR_MESSAGES.get(status, f"simulated error {status}"), fault.retry_after)


async def messages_endpoint(request: web.Request) -> web.StreamResponse:
    state, fault, raw = await record(request)
    if fault_response := _fault_response(fault):
        return fault_response
    if not request.headers.get("x-api-key"):
        return error_response(401, "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return error_response(400, "anthropic-version: header is required")
    return await _answer(request, state, fault, raw, vertex_model=None)


async def count_tokens_endpoint(request: web.Request) -> web.StreamResponse:
    state, fault, raw = await record(request)
    if fault_response := _fault_response(fault):
        return fault_response
    if not request.headers.get("x-api-key"):
        return error_response(401, "x-api-key header is required")
    return _count(request, raw, vertex=False)


def _count(request: web.Request, raw: bytes, vertex: bool) -> web.Response:
    """`{"input_tokens": n}` for a Messages request without max_tokens (the model in the body, also on Vertex)."""
    try:
        check_betas(request.headers.getall("anthropic-beta", []))
        body = orjson.loads(raw)
        if not isinstance(body, dict) or "max_tokens" in body:
            raise Rejected("max_tokens: Extra inputs are not permitted")
        if vertex and body.pop("anthropic_version", None) != VERTEX_VERSION:
            raise Rejected(f"anthropic_version: must be {VERTEX_VERSION!r}")
        validate_request({**body, "max_tokens": 1 << 20}, vertex=False)
    except orjson.JSONDecodeError:
        return error_response(400, "There was an error parsing the body of your request: invalid JSON")
    except (Rejected, FeatureRejected) as rejected:
        return error_response(getattr(rejected, "status", 400), str(rejected))
    texts = _texts(body.get("system") or "") + [t for m in body["messages"] for t in _texts(m["content"])]
    tools = [orjson.dumps(t).decode() for t in body.get("tools") or []]
    return web.json_response({"input_tokens": count_tokens(" ".join(texts + tools))})


async def vertex_endpoint(request: web.Request) -> web.StreamResponse:
    state, fault, raw = await record(request)
    if fault_response := _fault_response(fault):
        return fault_response
    model, _, method = request.match_info["target"].rpartition(":")
    if method not in ("rawPredict", "streamRawPredict") or not model:
        return error_response(404, f"unknown method {method!r}")
    if not request.headers.get("authorization", "").startswith("Bearer ") or len(request.headers["authorization"]) < 8:
        return error_response(401, "Request had invalid authentication credentials.")
    if model == "count-tokens" and method == "rawPredict":
        return _count(request, raw, vertex=True)
    return await _answer(request, state, fault, raw, vertex_model=model)


def _fault_response(fault: Fault | None) -> web.Response | None:
    """A status fault answers at once, unless it comes with drop_after_chunks: on a
    stream that is an `error` event after that many events, as the API does mid-stream."""
    if fault is None:
        return None
    if fault.status is not None and fault.drop_after_chunks is None:
        return fault_error_response(fault)
    if fault.garbage:
        return web.Response(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    return None


async def _answer(
    request: web.Request, state: SimulatorState, fault: Fault | None, raw: bytes, vertex_model: str | None
) -> web.StreamResponse:
    try:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise Rejected("the request body must be a JSON object")
        check_betas(request.headers.getall("anthropic-beta", []))
        validate_request(body, vertex=vertex_model is not None)
    except orjson.JSONDecodeError:
        return error_response(400, "There was an error parsing the body of your request: invalid JSON")
    except Rejected as rejected:
        return error_response(rejected.status, str(rejected))
    except FeatureRejected as rejected:
        return error_response(400, str(rejected))
    try:
        validate_modern(body, vertex_model or body["model"], vertex=vertex_model is not None)
    except ModernRejected as rejected:
        return error_response(400, str(rejected))
    message = answer_message(body, vertex_model or body["model"])
    request.app[PROMPT_CACHE].account(body, message["usage"])
    if body.get("stream"):
        return await _stream(request, state, fault, message)
    if fault is not None and fault.status is not None:
        return fault_error_response(fault)
    if fault is not None and fault.endless:
        return await endless_body(request, state, fault)
    return web.json_response(message)


# --- answering -------------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content or []:
        if block.get("type") == "text":
            texts.append(block["text"])
        elif block.get("type") == "tool_result":
            texts.extend(_texts(block.get("content", "")))
        elif block.get("type") == "tool_use":
            texts.append(orjson.dumps(block.get("input")).decode())
    return texts


def answer_message(body: JSON, model: str) -> JSON:
    messages = body["messages"]
    last_user = next(m for m in reversed(messages) if m["role"] == "user")
    prompt = " ".join(_texts(last_user["content"]))
    system = body.get("system") or ""
    all_text = " ".join(_texts(system) + [t for m in messages for t in _texts(m["content"])])
    blocks = _tool_use_blocks(body, prompt)
    stop_sequence = None
    if blocks:
        stop_reason = "tool_use"
    else:
        content = last_user["content"]
        results = [b for b in content if b["type"] == "tool_result"] if isinstance(content, list) else []
        if results:
            prompt = "the tool said " + " ".join(_texts(results))
        full = structured_text(body) or reply_text(prompt)
        text = structured_text(body) or reply_text(prompt, body["max_tokens"])
        stop_reason = "max_tokens" if text != full else "end_turn"
        for stop in body.get("stop_sequences") or []:
            if stop in text:
                text, stop_reason, stop_sequence = text[: text.index(stop)], "stop_sequence", stop
        blocks = [{"type": "text", "text": text}]
    if thinking_on(body):
        blocks = [thinking_block(prompt), *blocks]
    digest = hashlib.sha256(orjson.dumps(body)).hexdigest()
    output = " ".join(_texts(blocks)) + " ".join(b.get("thinking", "") for b in blocks)
    return {
        "id": "msg_sim" + digest[:20],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {
            "input_tokens": count_tokens(all_text),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": count_tokens(output),
        },
    }


def _tool_use_blocks(body: JSON, prompt: str) -> list[JSON]:
    """Tool calls when tools are forced, or the prompt names a tool or the weather."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {"type": "auto"}
    lowered = prompt.lower()
    if not tools or choice["type"] == "none":
        return []
    named = [t for t in tools if t["name"].lower() in lowered]
    asked = _asked_tool(body, tools)
    answered = _answers_tool_results(body)
    if choice["type"] == "auto" and not named and ("weather" not in lowered or answered):
        if asked is None:
            return []
        named = [asked]
    if choice["type"] == "any" and answered:
        # After the tools' results the model gives its answer: by a tool not called yet, the last offered.
        called = {b.get("name") for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]}
        named = [next((t for t in reversed(tools) if t["name"] not in called), tools[-1])]
    if choice["type"] == "tool":
        named = [t for t in tools if t["name"] == choice["name"]]
    chosen = named or [next((t for t in tools if "weather" in t["name"].lower()), tools[0])]
    wants_two = re.search(r"\b(two|2|both)\b", lowered) is not None and not choice.get("disable_parallel_tool_use")
    if wants_two and len(chosen) == 1:
        chosen = chosen * 2
    chosen = chosen[:2] if wants_two else chosen[:1]
    blocks: list[JSON] = []
    if choice["type"] == "auto":
        blocks.append({"type": "text", "text": "I'll use " + " and ".join(t["name"] for t in chosen) + "."})
    for n, tool in enumerate(chosen):
        arguments = tool_arguments(tool["input_schema"])
        if n == 1:  # the second call asks about a second city
            arguments = {k: ("Paris" if v == "Hamburg" else v) for k, v in arguments.items()}
        call_id = "toolu_sim" + hashlib.sha256(f"{prompt}|{n}".encode()).hexdigest()[:16]
        blocks.append({"type": "tool_use", "id": call_id, "name": tool["name"], "input": arguments})
    return blocks


def _asked_tool(body: JSON, tools: list[JSON]) -> JSON | None:
    """A tool the system prompt asks the answer to be given by (what the gateway asks when it
    cannot force the tool): the model complies."""
    system = " ".join(_texts(body.get("system") or ""))
    return next((t for t in tools if f"by calling the tool {t['name']}" in system), None)


def _answers_tool_results(body: JSON) -> bool:
    content = body["messages"][-1]["content"]
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


# --- streaming -------------------------------------------------------------------


def stream_events(message: JSON, endless: bool = False) -> Iterator[tuple[str, JSON]]:
    """The real event sequence for a finished message (or, endless, one that never ends)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        empty = _EMPTY.get(block["type"]) or {**block, "input": {}}
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in _block_deltas(block):
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        while endless:
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": " more"}}  # fmt: skip
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
    yield "message_stop", {"type": "message_stop"}


_EMPTY: dict[str, JSON] = {"text": {"type": "text", "text": ""},
                           "thinking": {"type": "thinking", "thinking": "", "signature": ""}}


def _block_deltas(block: JSON) -> Iterator[JSON]:
    if block["type"] == "thinking":  # as the API: thinking deltas, then the signature just before the stop
        for piece in split_words(block["thinking"]):
            yield {"type": "thinking_delta", "thinking": piece}
        yield {"type": "signature_delta", "signature": block["signature"]}
        return
    if block["type"] == "text":
        for piece in split_words(block["text"]):
            yield {"type": "text_delta", "text": piece}
        return
    # As the API does: an empty input streams as one "" fragment, never as "{}".
    arguments = orjson.dumps(block["input"]).decode() if block["input"] else ""
    for piece in [""] + [arguments[i : i + 8] for i in range(0, len(arguments), 8)]:
        yield {"type": "input_json_delta", "partial_json": piece}


async def _stream(
    request: web.Request, state: SimulatorState, fault: Fault | None, message: JSON
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    )
    await response.prepare(request)
    delay = (fault.delay_between_chunks if fault else 0.0) or state.stream_delay
    drop_after = fault.drop_after_chunks if fault else None
    endless = bool(fault and fault.endless)
    if endless:  # one text block that never ends
        message = {**message, "content": [{"type": "text", "text": "Endless"}], "stop_reason": "end_turn"}
    try:
        for sent, (name, data) in enumerate(stream_events(message, endless)):
            if fault is not None and drop_after is not None and sent >= drop_after:
                await _end_early(request, response, fault)
                return response
            await response.write(sse_event(name, data))
            if delay or endless:
                await asyncio.sleep(delay or 0.01)
        await response.write_eof()
    except ConnectionError:  # the client went away
        state.disconnects += 1
    return response


def sse_event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _end_early(request: web.Request, response: web.StreamResponse, fault: Fault) -> None:
    if fault.status is not None:  # an error event, then the stream ends cleanly
        message = ERROR_MESSAGES.get(fault.status, f"simulated error {fault.status}")
        await response.write(sse_event("error", error_body(fault.status, message)))
        await response.write_eof()
    elif request.transport is not None:  # the connection drops mid-stream
        request.transport.close()


