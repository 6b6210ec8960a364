"""A simulator of the OpenAI protocol (OpenAI, Azure OpenAI, vLLM-style servers).

It speaks the real wire format (see the recordings in tests/samples/): chat streamed
and not, `n` choices, tool calls when tools are given, `response_format` (json_object:
a JSON object; json_schema: an instance of the schema), legacy completions, embeddings
at each model's dimension (given to `create_app`, else 1024; `dimensions` when asked),
models, transcriptions, and Azure's deployment paths with `api-key` and `api-version`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from providers.simulators.common import (
    SIMULATOR_STATE,
    Fault,
    Received,
    SimulatorState,
    count_tokens,
    new_state_app,
    record,
    reply_text,
    split_words,
    tool_arguments,
    wait_for_release,
)
from providers.simulators.openai_responses import chat_request, response_object
from providers.simulators.openai_responses import stream_events as responses_events
from providers.simulators.schema_instance import schema_instance

DEFAULT_DIMENSION = 1024
MAX_DIMENSION = 8192  # real embedding models top out at a few thousand
MAX_CHOICES = 128  # OpenAI's bound on `n`
_API_KEY = web.AppKey("api_key", str)
_DIMENSIONS = web.AppKey("dimensions", Mapping)


def create_app(api_key: str | None = None, dimensions: Mapping[str, int] | None = None) -> web.Application:
    app = new_state_app()
    if api_key:
        app[_API_KEY] = api_key
    # Kept by reference: the demo refills it when its route table is reloaded.
    app[_DIMENSIONS] = dimensions if dimensions is not None else {}
    for prefix in ("/v1", "", "/openai/deployments/{deployment}"):
        app.router.add_post(prefix + "/chat/completions", chat)
        app.router.add_post(prefix + "/completions", completions)
        app.router.add_post(prefix + "/embeddings", embeddings)
        app.router.add_post(prefix + "/audio/transcriptions", transcriptions)
    for path in ("/v1/responses", "/responses", "/openai/responses"):
        app.router.add_post(path, responses)
    app.router.add_get("/v1/models", models)
    return app


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
           param: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _check_auth(request: web.Request) -> web.Response | None:
    expected = request.app.get(_API_KEY)
    if "deployment" in request.match_info:
        if "api-version" not in request.query:
            return _error(404, "Resource not found", code="404")
        given = request.headers.get("api-key")
        if expected and given != expected:
            return _error(401, "Access denied due to invalid subscription key.", code="401")
        return None
    if expected and request.headers.get("Authorization") != f"Bearer {expected}":
        return _error(401, "Incorrect API key provided.", code="invalid_api_key")
    return None


def _fault_response(fault: Fault | None) -> web.Response | None:
    if fault is None:
        return None
    if fault.status:
        headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else None
        return _error(fault.status, f"simulated upstream failure ({fault.status})", "server_error"
                      if fault.status >= 500 else "requests", headers=headers)
    if fault.garbage:
        return web.Response(status=200, text="<html>502 Bad Gateway</html>", content_type="application/json")
    return None


async def _begin(request: web.Request) -> tuple[SimulatorState, Fault | None, Any] | web.Response:
    state, fault, raw = await record(request)
    denied = _check_auth(request)
    if denied:
        return denied
    failed = _fault_response(fault)
    if failed:
        return failed
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object.")
    return state, fault, body


def _model(request: web.Request, body: dict[str, Any]) -> str:
    return str(request.match_info.get("deployment") or body.get("model") or "")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                texts.append("[an image]")
        return " ".join(texts)
    return ""


def _check_images(messages: list[Any]) -> str | None:
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                if url.startswith("data:"):
                    header, _, data = url.partition(",")
                    try:
                        base64.b64decode(data, validate=True)
                    except (binascii.Error, ValueError):
                        return f"messages[{i}]: invalid base64 image data"
                    if ";base64" not in header:
                        return f"messages[{i}]: image data URI must be base64"
                elif not url.startswith(("https://", "http://")):
                    return f"messages[{i}]: invalid image URL"
    return None


def _plan_tool_calls(body: dict[str, Any], messages: list[Any]) -> list[dict[str, Any]]:
    tools = [t.get("function", {}) for t in body.get("tools") or [] if isinstance(t, dict)]
    if not tools or body.get("tool_choice") == "none":
        return []
    last = messages[-1] if messages else {}
    if isinstance(last, dict) and last.get("role") == "tool":
        return []
    prompt = _text_of(last.get("content") if isinstance(last, dict) else "").lower()
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chosen = [t for t in tools if t.get("name") == (choice.get("function") or {}).get("name")]
    else:
        chosen = [t for t in tools if str(t.get("name", "")).lower() in prompt]
        if not chosen and ("weather" in prompt or choice == "required"):
            chosen = tools[:1]
    if body.get("parallel_tool_calls") is False:
        chosen = chosen[:1]
    calls = []
    for tool in chosen:
        args = tool_arguments(tool.get("parameters"))
        calls.append({"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                      "function": {"name": tool.get("name"), "arguments": orjson.dumps(args).decode()}})
    return calls


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of an answer: text (plain or JSON) or tool calls, and why it ended."""

    text: str
    calls: list[dict[str, Any]]
    finish: str


def _structured(body: dict[str, Any], said: str) -> str | None:
    """The JSON text `response_format` asks for, or None for plain text."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return orjson.dumps({"answer": reply_text(said)}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return orjson.dumps(schema_instance(schema if schema is not None else {"type": "object"})).decode()
    return None


def _answer(body: dict[str, Any], messages: list[Any]) -> Choice:
    """One choice; tool calls first, then `response_format`, then text within max tokens."""
    calls = _plan_tool_calls(body, messages)
    if calls:
        return Choice("", calls, "tool_calls")
    last = messages[-1] if messages else {}
    said = _text_of(last.get("content") if isinstance(last, dict) else "")
    if isinstance(last, dict) and last.get("role") == "tool":
        said = f"the tool answered {said}"
    structured = _structured(body, said)
    if structured is not None:  # a JSON answer is never cut: `parse()` refuses finish "length"
        return Choice(structured, [], "stop")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    text = reply_text(said, limit if isinstance(limit, int) else None)
    return Choice(text, [], "length" if _hit_limit(body, text) else "stop")


def _choices(body: dict[str, Any], messages: list[Any]) -> list[Choice]:
    """`n` choices (each tool call with its own id)."""
    return [_answer(body, messages) for _ in range(body.get("n") or 1)]


async def chat(request: web.Request) -> web.StreamResponse:
    begun = await _begin(request)
    if isinstance(begun, web.Response):
        return begun
    state, fault, body = begun
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' is a required property", param="messages")
    bad_image = _check_images(messages)
    if bad_image:
        return _error(400, bad_image, param="messages")
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CHOICES):
        return _error(400, f"Invalid 'n': expected an integer between 1 and {MAX_CHOICES}.", param="n")
    choices = _choices(body, messages)
    prompt_tokens = sum(count_tokens(_text_of(m.get("content"))) + 4 for m in messages if isinstance(m, dict))
    completion_tokens = sum(count_tokens(c.text) + sum(count_tokens(t["function"]["arguments"]) for t in c.calls)
                            for c in choices)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    base = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "created": int(time.time()),
            "model": _model(request, body), "system_fingerprint": "fp_simulated"}
    if not body.get("stream"):
        return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": i, "message": _message(c), "logprobs": None, "finish_reason": c.finish}
            for i, c in enumerate(choices)]})
    base["object"] = "chat.completion.chunk"
    chunks = [{**base, "choices": [{"index": i, "delta": d, "logprobs": None, "finish_reason": None}]}
              for i, c in enumerate(choices) for d in _deltas(c)]
    chunks.extend({**base, "choices": [{"index": i, "delta": {}, "logprobs": None, "finish_reason": c.finish}]}
                  for i, c in enumerate(choices))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    return await stream_events(request, state, fault, [orjson.dumps(c) for c in chunks])


async def responses(request: web.Request) -> web.StreamResponse:
    """The Responses API: the answer planned as for chat, in the Responses shapes."""
    if request.path.startswith("/openai/") and "api-version" not in request.query:
        return _error(404, "Resource not found", code="404")
    begun = await _begin(request)
    if isinstance(begun, web.Response):
        return begun
    state, fault, body = begun
    if not isinstance(body.get("input"), (str, list)) or not body.get("input"):
        return _error(400, "Missing required parameter: 'input'.", param="input")
    chat_like, messages = chat_request(body)
    choice = _answer(chat_like, messages)
    prompt = sum(count_tokens(str(m.get("content") or "")) + 4 for m in messages)
    completion = count_tokens(choice.text) + sum(count_tokens(c["function"]["arguments"]) for c in choice.calls)
    response = response_object(body, str(body.get("model") or ""), choice.text, choice.calls, choice.finish,
                               {"prompt_tokens": prompt, "completion_tokens": completion})
    if not body.get("stream"):
        return web.json_response(response)
    events = responses_events(response)
    payloads = [orjson.dumps({"type": kind, "sequence_number": n, **fields})
                for n, (kind, fields) in enumerate(events)]
    return await stream_events(request, state, fault, payloads, done=False,
                               names=[kind for kind, _ in events])


def _message(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text or None, "refusal": None}
    if choice.calls:
        message["tool_calls"] = choice.calls
    return message


def _deltas(choice: Choice) -> list[dict[str, Any]]:
    """A choice as stream deltas: the role, tool calls in pieces, then the words."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None if choice.calls else "", "refusal": None}]
    for i, call in enumerate(choice.calls):
        deltas.append({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                       "function": {"name": call["function"]["name"], "arguments": ""}}]})
        args = call["function"]["arguments"]
        for j in range(0, len(args), 8):
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 8]}}]})
    deltas.extend({"content": piece} for piece in (split_words(choice.text) if choice.text else []))
    return deltas


def _hit_limit(body: dict[str, Any], text: str) -> bool:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return isinstance(limit, int) and len(text.split()) >= limit


async def stream_events(request: web.Request, state: SimulatorState, fault: Fault | None,
                        payloads: list[bytes], done: bool = True,
                        names: list[str] | None = None) -> web.StreamResponse:
    """Write `data:` events (named `event:` lines where `names` are given) at the configured
    pace, honouring a scripted fault."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    delay = fault.delay_between_chunks if fault and fault.delay_between_chunks else state.stream_delay
    drop_after = fault.drop_after_chunks if fault else None
    try:
        sent = 0
        while True:
            for n, payload in enumerate(payloads):
                if drop_after is not None and sent >= drop_after:
                    if request.transport:
                        request.transport.close()
                    return response
                name = b"event: " + names[n].encode() + b"\n" if names else b""
                await response.write(name + b"data: " + payload + b"\n\n")
                sent += 1
                if sent == 1:
                    await wait_for_release(state)
                if delay:
                    await asyncio.sleep(delay)
            if not (fault and fault.endless):
                break
            await asyncio.sleep(max(delay, 0.05))
        if done:
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        state.disconnects += 1
        raise
    return response


async def completions(request: web.Request) -> web.StreamResponse:
    begun = await _begin(request)
    if isinstance(begun, web.Response):
        return begun
    state, fault, body = begun
    prompt = body.get("prompt")
    if not isinstance(prompt, (str, list)):
        return _error(400, "'prompt' is a required property", param="prompt")
    text_prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    limit = body.get("max_tokens", 16)
    text = reply_text(text_prompt, limit if isinstance(limit, int) else 16)
    prompt_tokens, completion_tokens = count_tokens(text_prompt), count_tokens(text)
    finish = "length" if isinstance(limit, int) and len(text.split()) >= limit else "stop"
    base = {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": int(time.time()),
            "model": _model(request, body), "system_fingerprint": "fp_simulated"}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if not body.get("stream"):
        return web.json_response({**base, "choices": [{"text": text, "index": 0, "logprobs": None,
                                                       "finish_reason": finish}], "usage": usage})
    pieces = split_words(text)
    chunks = [{**base, "choices": [{"text": p, "index": 0, "logprobs": None,
                                    "finish_reason": finish if i == len(pieces) - 1 else None}]}
              for i, p in enumerate(pieces)]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": usage})
    return await stream_events(request, state, fault, [orjson.dumps(c) for c in chunks])


def embedding_vector(text: str, dimension: int) -> list[float]:
    """A deterministic unit vector derived from the text."""
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] * 31 + i * 17) % 251) / 125.0 - 1.0 for i in range(dimension)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


async def embeddings(request: web.Request) -> web.Response:
    begun = await _begin(request)
    if isinstance(begun, web.Response):
        return begun
    _, _, body = begun
    inputs = body.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs:
        return _error(400, "'input' is a required property", param="input")
    model = _model(request, body)
    dimension = int(body.get("dimensions") or request.app[_DIMENSIONS].get(model, DEFAULT_DIMENSION))
    if not 1 <= dimension <= MAX_DIMENSION:
        return _error(400, f"'dimensions' must be between 1 and {MAX_DIMENSION}", param="dimensions")
    data = []
    tokens = 0
    for i, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        tokens += count_tokens(text) if isinstance(item, str) else len(item)
        vector: Any = embedding_vector(text, dimension)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    return web.json_response({"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


async def transcriptions(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    denied = _check_auth(request)
    if denied:
        return denied
    form = await request.post()
    state.received.append(_form_record(request, form))
    fault = state.next_fault(request.path)
    failed = _fault_response(fault)
    if failed:
        return failed
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return _error(400, "'file' is a required property", param="file")
    audio = upload.file.read()
    seconds = max(1, len(audio) // 32000)
    text = f"This is a simulated transcription of {upload.filename} ({len(audio)} bytes)."
    fmt = form.get("response_format", "json")
    if fmt in ("text", "srt", "vtt"):
        return web.Response(text=text, content_type="text/plain")
    if fmt == "verbose_json":
        return web.json_response({"task": "transcribe", "language": form.get("language", "english"),
                                  "duration": float(seconds), "text": text, "segments": [],
                                  "usage": {"type": "duration", "seconds": seconds}})
    return web.json_response({"text": text, "usage": {"type": "duration", "seconds": seconds}})


def _form_record(request: web.Request, form: Any) -> Any:
    fields = {k: (v.filename if isinstance(v, web.FileField) else v) for k, v in form.items()}
    return Received(request.method, request.path, dict(request.query), dict(request.headers),
                    orjson.dumps(fields))


async def models(request: web.Request) -> web.Response:
    denied = _check_auth(request)
    if denied:
        return denied
    return web.json_response({"object": "list", "data": []})
