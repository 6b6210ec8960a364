"""A simulator of Anthropic's Messages API, strict the way the real one is.

POST /v1/messages (x-api-key, anthropic-version) and the Vertex AI path
(`/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict` or
`:streamRawPredict`, Bearer auth, `anthropic_version` in the body, no `model`).

It refuses what the real API refuses (a missing max_tokens, a `system` role inside
messages, roles that do not alternate, malformed tool or image blocks, a tool_result
without its tool_use, tool blocks in a request that defines no tools), answers
deterministically, calls tools when asked about them (two at once when asked about
two), and streams the real event sequence.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

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
VERTEX_VERSION = "vertex-2023-10-16"
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
               (b"RIFF", "image/webp"))  # fmt: skip
TOP_LEVEL_FIELDS = frozenset({
    "model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences", "stream",
    "tools", "tool_choice", "metadata", "thinking", "service_tier", "output_config",
})  # fmt: skip
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip
ERROR_MESSAGES = {429: "Number of request tokens has exceeded your per-minute rate limit", 529: "Overloaded"}


class Rejected(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def create_app() -> web.Application:
    app = new_state_app()
    app.router.add_post("/v1/messages", messages_endpoint)
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


async def vertex_endpoint(request: web.Request) -> web.StreamResponse:
    state, fault, raw = await record(request)
    if fault_response := _fault_response(fault):
        return fault_response
    model, _, method = request.match_info["target"].rpartition(":")
    if method not in ("rawPredict", "streamRawPredict") or not model:
        return error_response(404, f"unknown method {method!r}")
    if not request.headers.get("authorization", "").startswith("Bearer ") or len(request.headers["authorization"]) < 8:
        return error_response(401, "Request had invalid authentication credentials.")
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
        validate_request(body, vertex=vertex_model is not None)
    except orjson.JSONDecodeError:
        return error_response(400, "There was an error parsing the body of your request: invalid JSON")
    except Rejected as rejected:
        return error_response(rejected.status, str(rejected))
    try:
        validate_modern(body, vertex_model or body["model"], vertex=vertex_model is not None)
    except ModernRejected as rejected:
        return error_response(400, str(rejected))
    message = answer_message(body, vertex_model or body["model"])
    if body.get("stream"):
        return await _stream(request, state, fault, message)
    if fault is not None and fault.status is not None:
        return fault_error_response(fault)
    if fault is not None and fault.endless:
        return await endless_body(request, state, fault)
    return web.json_response(message)


# --- validation ------------------------------------------------------------------


def validate_request(body: JSON, vertex: bool) -> None:
    for name in body:
        if name not in TOP_LEVEL_FIELDS and not (vertex and name == "anthropic_version"):
            raise Rejected(f"{name}: Extra inputs are not permitted")
    if vertex:
        if body.get("anthropic_version") != VERTEX_VERSION:
            raise Rejected(f"anthropic_version: must be {VERTEX_VERSION!r}")
        if "model" in body:
            raise Rejected("model: Extra inputs are not permitted")
    elif not isinstance(body.get("model"), str) or not body["model"]:
        raise Rejected("model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise Rejected("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Rejected("max_tokens: Input should be a valid integer greater than or equal to 1")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise Rejected(f"{name}: Input should be a number between 0 and 1")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)):
        raise Rejected("stop_sequences: each stop sequence must be a string containing non-whitespace")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        raise Rejected("metadata: only user_id is permitted")
    _validate_system(body.get("system"))
    tool_names = _validate_tools(body.get("tools"), body.get("tool_choice"))
    _validate_messages(body.get("messages"))
    if not tool_names and _has_tool_blocks(body["messages"]):
        raise Rejected("Requests which include `tool_use` or `tool_result` blocks must define tools.")


def _validate_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise Rejected("system: Input should be a valid string or list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
            raise Rejected(f"system.{i}: text content blocks must be non-empty")


def _validate_tools(tools: Any, tool_choice: Any) -> set[str]:
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise Rejected("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not TOOL_NAME.match(str(tool.get("name", ""))):
                raise Rejected(f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Rejected(f"tools.{i}.input_schema: input_schema must be a JSON schema of type object")
            if tool["name"] in names:
                raise Rejected("tools: Tool names must be unique.")
            names.add(tool["name"])
    if tool_choice is not None:
        kind = tool_choice.get("type") if isinstance(tool_choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise Rejected(
                "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
            )
        if not names and kind != "none":
            raise Rejected("tool_choice: tool_choice may only be specified while providing tools.")
        if kind == "tool" and tool_choice.get("name") not in names:
            raise Rejected(f"tool_choice.name: tool {tool_choice.get('name')!r} was not found in tools")
    return names


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Rejected("messages: at least one message is required")
    pending_tool_uses: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise Rejected(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level `system` '
                'parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Rejected(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise Rejected('messages: first message must use the "user" role')
        if i > 0 and messages[i - 1].get("role") == role:
            raise Rejected(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        blocks = _validate_content(message.get("content"), role, f"messages.{i}.content")
        _validate_tool_pairing(blocks, pending_tool_uses, i)
        pending_tool_uses = {b["id"] for b in blocks if b["type"] == "tool_use"}


def _has_tool_blocks(messages: list[JSON]) -> bool:
    """Validated messages: string content, or lists of typed blocks."""
    blocks = [b for m in messages if isinstance(m["content"], list) for b in m["content"]]
    return any(b["type"] in ("tool_use", "tool_result") for b in blocks)


def _validate_tool_pairing(blocks: list[JSON], pending_tool_uses: set[str], i: int) -> None:
    """Every tool_use of the previous turn answered first thing in this one, and nothing else."""
    results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
    missing = pending_tool_uses - set(results)
    if missing:
        raise Rejected(
            f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            + ", ".join(sorted(missing))
        )
    unexpected = set(results) - pending_tool_uses
    if unexpected:
        raise Rejected(
            f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {sorted(unexpected)[0]}. "
            "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
        )
    if any(b["type"] != "tool_result" for b in blocks[: len(results)]):
        raise Rejected(f"messages.{i}.content: `tool_result` blocks must come first in the user message")


def _validate_content(content: Any, role: str, where: str) -> list[JSON]:
    if isinstance(content, str):
        if not content:
            raise Rejected(f"{where}: messages must have non-empty content")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise Rejected(f"{where}: messages must have non-empty content")
    for j, block in enumerate(content):
        _validate_block(block, role, f"{where}.{j}")
    return content


def _validate_block(block: Any, role: str, where: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"]:
            raise Rejected(f"{where}: text content blocks must be non-empty")
    elif kind == "image" and role == "user":
        _validate_image(block.get("source"), where)
    elif kind == "tool_use" and role == "assistant":
        if not isinstance(block.get("id"), str) or not re.match(r"^[a-zA-Z0-9_-]+$", block["id"]):
            raise Rejected(f"{where}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            raise Rejected(f"{where}: tool_use blocks need a name and an object input")
    elif kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str):
            raise Rejected(f"{where}.tool_use_id: Field required")
        inner = block.get("content", "")
        if isinstance(inner, list):
            for k, part in enumerate(inner):
                if not isinstance(part, dict) or part.get("type") not in ("text", "image"):
                    raise Rejected(f"{where}.content.{k}: Input tag does not match 'text' or 'image'")
                _validate_block(part, "user", f"{where}.content.{k}")
        elif not isinstance(inner, str):
            raise Rejected(f"{where}.content: Input should be a valid string or list")
    elif kind == "thinking" and role == "assistant":
        if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
            raise Rejected(f"{where}: thinking blocks need thinking and signature")
    elif kind == "redacted_thinking" and role == "assistant":
        if not isinstance(block.get("data"), str):
            raise Rejected(f"{where}.data: Field required")
    else:
        raise Rejected(f"{where}: Input tag {kind!r} found using 'type' is not allowed in a {role} message")


def _validate_image(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "url":
        if not str(source.get("url", "")).startswith("https://"):
            raise Rejected(f"{where}.source.url: only https URLs are supported")
        return
    if kind != "base64":
        raise Rejected(f"{where}.source: Input tag does not match 'base64' or 'url'")
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        raise Rejected(
            f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
        )
    try:
        image = base64.b64decode(str(source.get("data", "")), validate=True)
        if not image:
            raise ValueError("empty")
    except (binascii.Error, ValueError) as exc:
        raise Rejected(f"{where}.source.data: invalid base64 data") from exc
    shown = next((t for magic, t in IMAGE_MAGIC if image.startswith(magic)), source["media_type"])
    if shown != source["media_type"]:  # the API looks at the bytes
        raise Rejected(f"{where}.source.data: Image does not match the provided media type {source['media_type']}")


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
        empty = {"type": "text", "text": ""} if block["type"] == "text" else {**block, "input": {}}
        if block["type"] == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
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


