"""A simulator of the Gemini API (and of Vertex AI's path form of it), for `llm-router
demo` and the tests.

Strict where the real service is: an API key (or, on the Vertex path, a bearer token)
is required; only the roles `user` and `model` exist; function declarations and
response schemas may use only the OpenAPI-subset keys (`additionalProperties`, `$ref`,
... are unknown names), OBJECTs need properties and enums are strings; inline data
must be valid base64 of a supported MIME type; a function-call turn must follow a
user turn and a function-response turn must follow it with as many responses.

Answers are deterministic: a text (`reply_text`), or, with tools and a prompt naming a
tool or mentioning "weather" (or mode ANY), calls to them (one per city when several
known cities are named); after function responses it answers text; "unsafe" in the
prompt ends with finishReason SAFETY. Embeddings have 768 dimensions, derived from
the text. Streams (`alt=sse`) are CRLF-framed like the real recordings.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import math
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from providers.base import JSON, dumps
from providers.simulators.common import (
    Fault,
    SimulatorState,
    count_tokens,
    new_state_app,
    record,
    reply_text,
    split_words,
    tool_arguments,
)

EMBEDDING_DIMENSION = 768
MAX_EMBED_BATCH = 100
CITIES = (
    "Paris", "London", "Berlin", "Hamburg", "Munich", "Frankfurt", "Vienna", "Zurich", "Amsterdam", "Madrid",
    "Barcelona", "Rome", "Milan", "Lisbon", "Dublin", "Stockholm", "Oslo", "Copenhagen", "Prague", "Warsaw",
    "Tokyo", "Seoul", "Beijing", "Shanghai", "Singapore", "Mumbai", "Sydney", "Dubai", "Cairo", "Toronto",
    "New York", "Boston", "Chicago", "Seattle", "San Francisco", "Los Angeles",
)  # fmt: skip
KNOWN_MODEL_PREFIXES = (
    "gemini-",
    "gemma-",
    "learnlm-",
    "text-embedding-",
    "embedding-",
    "text-multilingual-embedding-",
)
MIME_TYPES = frozenset({
    "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
    "audio/wav", "audio/mp3", "audio/mpeg", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac",
    "video/mp4", "video/mpeg", "video/webm", "application/pdf", "text/plain",
})  # fmt: skip
REQUEST_FIELDS = frozenset({
    "contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent",
})  # fmt: skip
PART_DATA = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
                       "codeExecutionResult"})  # fmt: skip
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
})  # fmt: skip
SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
GENERATION_FIELDS = frozenset({
    "temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "presencePenalty",
    "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "responseJsonSchema", "responseLogprobs",
    "logprobs", "responseModalities", "thinkingConfig",
})  # fmt: skip
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}  # fmt: skip


class GeminiError(Exception):
    """An answer in Gemini's error shape."""

    def __init__(self, status: int, message: str, details: list[JSON] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []

    def response(self, retry_after: float | None = None) -> web.Response:
        error: JSON = {"code": self.status, "message": self.message, "status": RPC_STATUS.get(self.status, "UNKNOWN")}
        if self.details:
            error["details"] = self.details
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
        return web.json_response({"error": error}, status=self.status, headers=headers)


def _invalid(message: str) -> GeminiError:
    return GeminiError(400, message)


def create_app() -> web.Application:
    app = new_state_app()
    app.router.add_post("/v1beta/models/{target}", _gemini_api)
    app.router.add_post("/v1/projects/{project}/locations/{location}/publishers/google/models/{target}", _vertex_api)
    return app


async def _gemini_api(request: web.Request) -> web.StreamResponse:
    return await _handle(request, vertex=False)


async def _vertex_api(request: web.Request) -> web.StreamResponse:
    return await _handle(request, vertex=True)


async def _handle(request: web.Request, *, vertex: bool) -> web.StreamResponse:
    state, fault, body = await record(request)
    model, _, action = request.match_info["target"].partition(":")
    try:
        _authenticate(request, vertex)
        streaming = action == "streamGenerateContent" and request.query.get("alt") == "sse"
        if fault is not None and fault.status is not None and not (streaming and fault.drop_after_chunks is not None):
            raise _fault_error(fault)
        if fault is not None and fault.garbage and not streaming:
            return web.Response(status=200, text="<html><body>Bad Gateway</body></html>", content_type="text/html")
        if fault is not None and fault.endless and not streaming:
            return await _endless_body(request, state, fault)
        payload = _json_object(body)
        if action in ("generateContent", "streamGenerateContent"):
            _check_model(model, embedding=False)
            _validate_generate(payload, vertex)
            answer = _answer(payload, model)
            if action == "generateContent":
                return web.json_response(answer.response())
            return await _stream(request, state, fault, answer)
        _check_model(model, embedding=True)
        if action == "batchEmbedContents" and not vertex:
            return web.json_response(_batch_embed(payload, model))
        if action == "predict" and vertex:
            return web.json_response(_vertex_predict(payload))
        raise GeminiError(404, f"Method {action!r} is not found for models/{model}.")
    except GeminiError as error:
        return error.response(fault.retry_after if fault is not None else None)


def _authenticate(request: web.Request, vertex: bool) -> None:
    if vertex:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise GeminiError(
                401, "Request is missing required authentication credential. Expected OAuth 2 access token."
            )
        return
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise GeminiError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        )
    if key.startswith("invalid"):
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com"}]  # fmt: skip
        raise GeminiError(400, "API key not valid. Please pass a valid API key.", details)


def _fault_error(fault: Fault) -> GeminiError:
    status = fault.status or 500
    details: list[JSON] = []
    if status == 429 and fault.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after:g}s"})
    messages = {429: "You exceeded your current quota, please check your plan and billing details.",
                503: "The model is overloaded. Please try again later."}  # fmt: skip
    return GeminiError(status, messages.get(status, f"Simulated error {status}."), details)


def _check_model(model: str, *, embedding: bool) -> None:
    is_embedding = "embedding" in model
    if not model.startswith(KNOWN_MODEL_PREFIXES) or is_embedding != embedding:
        method = "embedding" if embedding else "generateContent"
        raise GeminiError(404, f"models/{model} is not found for API version v1beta, or is not supported for {method}.")


def _json_object(body: bytes) -> JSON:
    try:
        payload = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise _invalid("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(payload, dict):
        raise _invalid("Invalid JSON payload received. Expected an object.")
    return payload


# --- strictness -----------------------------------------------------------------------


def _unknown(name: str, where: str) -> GeminiError:
    return _invalid(f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.")


def _validate_generate(payload: JSON, vertex: bool) -> None:
    for name in payload:
        if name not in REQUEST_FIELDS and not (vertex and name == "labels"):
            raise _unknown(name, "")
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        role = content.get("role") if isinstance(content, dict) else None
        if role not in ("user", "model") and (vertex or role is not None):
            raise _invalid("Please use a valid role: user, model.")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            raise _invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _validate_part(part, f"contents[{i}].parts[{j}]")
    _validate_turn_order(contents)
    system = payload.get("systemInstruction")
    if system is not None:
        for j, part in enumerate((system or {}).get("parts") or []):
            _validate_part(part, f"system_instruction.parts[{j}]")
    declared = _validate_tools(payload.get("tools"))
    _validate_tool_config(payload.get("toolConfig"), declared)
    _validate_generation_config(payload.get("generationConfig"))


def _validate_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise _invalid(f"Invalid value at '{where}': a Part must be an object.")
    data = [k for k in part if k in PART_DATA]
    for name in part:
        if name not in PART_DATA and name not in ("thought", "thoughtSignature", "videoMetadata"):
            raise _unknown(name, where)
    if len(data) != 1:
        raise _invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field"
        )
    inline = part.get("inlineData")
    if inline is not None:
        mime = (inline or {}).get("mimeType")
        if mime not in MIME_TYPES:
            raise _invalid(f"Unsupported MIME type: {mime}")
        try:
            base64.b64decode((inline or {}).get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed."
            ) from None
    if "functionResponse" in part and not isinstance((part["functionResponse"] or {}).get("response"), dict):
        raise _invalid(
            f"Invalid value at '{where}.function_response.response' (type.googleapis.com/google.protobuf.Struct)"
        )


def _validate_turn_order(contents: list[JSON]) -> None:
    previous: JSON | None = None
    for content in contents:
        calls = [p["functionCall"] for p in content["parts"] if "functionCall" in p]
        responses = [p["functionResponse"] for p in content["parts"] if "functionResponse" in p]
        if calls and (content.get("role") != "model" or previous is None or previous.get("role") == "model"):
            raise _invalid(
                "Please ensure that function call turn comes immediately after a user turn or after a function "
                "response turn."
            )
        if responses:
            before = [p["functionCall"] for p in (previous or {}).get("parts", []) if "functionCall" in p]
            if not before:
                raise _invalid(
                    "Please ensure that function response turn comes immediately after a function call turn."
                )
            if len(before) != len(responses):
                raise _invalid(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )
        previous = content


def _validate_tools(tools: Any) -> set[str]:
    declared: set[str] = set()
    for t, tool in enumerate(tools or []):
        for name in tool:
            if name not in ("functionDeclarations", "googleSearch", "codeExecution"):
                raise _unknown(name, f"tools[{t}]")
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}]"
            for name in declaration:
                if name not in ("name", "description", "parameters", "parametersJsonSchema", "response", "behavior"):
                    raise _unknown(name, where)
            if not FUNCTION_NAME.match(str(declaration.get("name", ""))):
                raise _invalid(f"* GenerateContentRequest.{where}.name: Invalid function name.")
            if declaration.get("parameters") is not None:
                _validate_schema(declaration["parameters"], f"{where}.parameters")
            declared.add(declaration["name"])
    return declared


def _validate_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise _invalid(f"Invalid value at '{where}': a Schema must be an object.")
    for name in schema:
        if name not in SCHEMA_FIELDS:
            raise _unknown(name, where)
    kind = str(schema.get("type", "TYPE_UNSPECIFIED")).upper()
    if "type" in schema and kind not in SCHEMA_TYPES:
        raise _invalid(
            f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type)"
        )
    if "enum" in schema and not all(isinstance(v, str) for v in schema["enum"] or []):
        raise _invalid(f"Invalid value at '{where}.enum': enum values must be strings.")
    properties = schema.get("properties")
    if kind == "OBJECT" and not properties:
        raise _invalid(f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type")
    for name, sub in (properties or {}).items():
        _validate_schema(sub, f"{where}.properties[{name}].value")
    missing = [r for r in schema.get("required") or [] if r not in (properties or {})]
    if missing:
        raise _invalid(f"* GenerateContentRequest.{where}.required[0]: property is not defined")
    if kind == "ARRAY" and "items" not in schema:
        raise _invalid(f"* GenerateContentRequest.{where}.items: missing field.")
    if "items" in schema:
        _validate_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(schema.get("anyOf") or []):
        _validate_schema(sub, f"{where}.any_of[{k}]")


def _validate_tool_config(config: Any, declared: set[str]) -> None:
    if config is None:
        return
    calling = (config or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "MODE_UNSPECIFIED")
    if mode not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
        raise _invalid("Invalid value at 'tool_config.function_calling_config.mode'")
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None and mode not in ("ANY", "VALIDATED"):
        raise _invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only "
                       "allowed when mode is ANY.")  # fmt: skip
    if any(name not in declared for name in allowed or []):
        raise _invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                       "function not declared.")  # fmt: skip


def _validate_generation_config(config: Any) -> None:
    for name in config or {}:
        if name not in GENERATION_FIELDS:
            raise _unknown(name, "generation_config")
    config = config or {}
    count = config.get("candidateCount", 1)
    if not isinstance(count, int) or not 1 <= count <= 8:
        raise _invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and 8.")
    if config.get("responseSchema") is not None:
        _validate_schema(config["responseSchema"], "generation_config.response_schema")
    if config.get("responseSchema") is not None and config.get("responseMimeType") != "application/json":
        raise _invalid("* GenerateContentRequest.generation_config.response_mime_type: must be application/json.")


# --- answers --------------------------------------------------------------------------


@dataclass
class Answer:
    model: str
    parts: list[JSON]
    finish_reason: str
    prompt_tokens: int
    candidates: int = 1
    response_id: str = field(default_factory=lambda: uuid.uuid4().hex[:22])

    @property
    def completion_tokens(self) -> int:
        return sum(count_tokens(p.get("text") or str(p.get("functionCall", ""))) for p in self.parts)

    def usage(self, completion_tokens: int) -> JSON:
        total = self.prompt_tokens + completion_tokens
        return {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": completion_tokens,
                "totalTokenCount": total}  # fmt: skip

    def chunk(self, parts: list[JSON], finish: str | None, completion_tokens: int) -> JSON:
        candidates = []
        for index in range(self.candidates):
            candidate: JSON = {"index": index}
            if parts:
                candidate["content"] = {"parts": parts, "role": "model"}
            if finish:
                candidate["finishReason"] = finish
                if finish == "SAFETY":
                    candidate["safetyRatings"] = [
                        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                    ]
            candidates.append(candidate)
        return {"candidates": candidates, "usageMetadata": self.usage(completion_tokens), "modelVersion": self.model,
                "responseId": self.response_id}  # fmt: skip

    def response(self) -> JSON:
        parts = [] if self.finish_reason == "SAFETY" else self.parts
        return self.chunk(parts, self.finish_reason, self.completion_tokens)


def _texts(content: JSON) -> str:
    return " ".join(p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str))


def _answer(payload: JSON, model: str) -> Answer:
    contents: list[JSON] = payload["contents"]
    config = payload.get("generationConfig") or {}
    system = payload.get("systemInstruction") or {}
    everything = " ".join([_texts(system)] + [_texts(c) for c in contents])
    everything += " ".join(dumps(p).decode() for c in contents for p in c["parts"] if "functionResponse" in p)
    last = contents[-1]
    prompt = _texts(last)
    limit = config.get("maxOutputTokens")
    answer = Answer(model, [], "STOP", count_tokens(everything), candidates=config.get("candidateCount", 1))
    responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
    calling = (payload.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if responses:
        summary = "; ".join(f"{r.get('name')} said {dumps(r.get('response')).decode()}" for r in responses)
        prompt = f"{prompt} {summary}".strip()
    elif "unsafe" in prompt.lower():
        answer.parts, answer.finish_reason = [{"text": " ".join(reply_text(prompt).split()[:3])}], "SAFETY"
        return answer
    elif payload.get("tools") and calling.get("mode") != "NONE":
        calls = _function_calls(payload["tools"], calling, prompt)
        if calls:
            answer.parts = [{"functionCall": call} for call in calls]
            return answer
    text = reply_text(prompt, limit)
    if limit is not None and len(reply_text(prompt).split()) > limit:
        answer.finish_reason = "MAX_TOKENS"
    answer.parts = [{"text": text}]
    return answer


def _function_calls(tools: list[JSON], calling: JSON, prompt: str) -> list[JSON]:
    """Several named tools: one call each; else one tool, called once per city named
    (two calls, Hamburg and Paris, when "two"/"both" is asked without cities)."""
    declarations = [d for tool in tools for d in tool.get("functionDeclarations") or []]
    if calling.get("allowedFunctionNames"):
        declarations = [d for d in declarations if d["name"] in calling["allowedFunctionNames"]]
    lowered = prompt.lower()
    named = [d for d in declarations if d["name"].lower() in lowered]
    if not declarations or not (named or "weather" in lowered or calling.get("mode") == "ANY"):
        return []
    cities = sorted((c for c in CITIES if c.lower() in lowered), key=lambda c: lowered.index(c.lower()))
    if len(cities) < 2 and len(named) < 2 and re.search(r"\b(two|2|both)\b", lowered):
        cities = (cities + [c for c in ("Hamburg", "Paris") if c not in cities])[:2]
    if len(named) >= 2:
        chosen, cities = named, cities[:1] * len(named)
    else:
        tool = (named or [d for d in declarations if "weather" in d["name"].lower()] or declarations)[0]
        chosen = [tool] * max(1, len(cities))
    calls = []
    for n, declaration in enumerate(chosen):
        args = tool_arguments(_lower_types(declaration.get("parameters") or {}))
        for key in args:
            if n < len(cities) and ("city" in key or "location" in key):
                args[key] = cities[n]
        calls.append({"name": declaration["name"], "args": args})
    return calls


def _lower_types(schema: Any) -> Any:
    """tool_arguments reads JSON-schema type names; Gemini's are upper-case."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


# --- streams --------------------------------------------------------------------------


def _stream_chunks(answer: Answer, endless: bool) -> Iterator[JSON]:
    if endless:
        produced = 0
        while True:
            produced += 1
            yield answer.chunk([{"text": " more"}], None, produced)
    text = "".join(p.get("text", "") for p in answer.parts)
    if not text:
        yield answer.chunk(answer.parts, answer.finish_reason, answer.completion_tokens)
        return
    words = split_words(text)
    for n, word in enumerate(words, start=1):
        finish = answer.finish_reason if n == len(words) else None
        yield answer.chunk([{"text": word}], finish, count_tokens("".join(words[:n])))


async def _stream(
    request: web.Request, state: SimulatorState, fault: Fault | None, answer: Answer
) -> web.StreamResponse:
    if request.query.get("alt") != "sse":  # the JSON-array form, sent at once
        return web.json_response(list(_stream_chunks(answer, endless=False)))
    chunks = _stream_chunks(answer, endless=fault is not None and fault.endless)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    delay = fault.delay_between_chunks if fault is not None and fault.delay_between_chunks else state.stream_delay
    drop_after = fault.drop_after_chunks if fault is not None else None
    try:
        for sent, chunk in enumerate(chunks):
            if fault is not None and drop_after is not None and sent >= drop_after:
                await _end_early(request, response, fault)
                return response
            data = b"<html>garbage</html>" if fault is not None and fault.garbage else dumps(chunk)
            await response.write(b"data: " + data + b"\r\n\r\n")
            if delay or (fault is not None and fault.endless):
                await asyncio.sleep(delay or 0.01)
        await response.write_eof()
    except ConnectionError:  # the client went away
        state.disconnects += 1
    return response


async def _end_early(request: web.Request, response: web.StreamResponse, fault: Fault) -> None:
    """With a status: an error event, then the body ends; without: the connection drops."""
    if fault.status is not None:
        error = _fault_error(fault)
        payload = {"error": {"code": error.status, "message": error.message, "status": RPC_STATUS.get(error.status)}}
        await response.write(b"data: " + dumps(payload) + b"\r\n\r\n")
        await response.write_eof()
    elif request.transport is not None:
        request.transport.close()


async def _endless_body(request: web.Request, state: SimulatorState, fault: Fault) -> web.StreamResponse:
    """A JSON answer that never ends: whitespace, forever, until the client leaves."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        while True:
            await response.write(b" ")
            await asyncio.sleep(fault.delay_between_chunks or state.stream_delay or 0.01)
    except ConnectionError:
        state.disconnects += 1
    return response


# --- embeddings -----------------------------------------------------------------------


def embedding_vector(text: str, dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """A unit vector that depends only on the text."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _dimension(value: Any) -> int:
    if value is None:
        return EMBEDDING_DIMENSION
    if not isinstance(value, int) or not 1 <= value <= EMBEDDING_DIMENSION:
        raise _invalid(f"* outputDimensionality must be between 1 and {EMBEDDING_DIMENSION}.")
    return value


def _batch_embed(payload: JSON, model: str) -> JSON:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        raise _invalid("* BatchEmbedContentsRequest.requests: requests must not be empty")
    if len(requests) > MAX_EMBED_BATCH:
        raise _invalid(f"* BatchEmbedContentsRequest.requests: at most {MAX_EMBED_BATCH} requests can be in one batch")
    embeddings = []
    for i, item in enumerate(requests):
        if not isinstance(item, dict) or item.get("model") != f"models/{model}":
            raise _invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}")
        parts = (item.get("content") or {}).get("parts") or []
        if not parts or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
            raise _invalid(f"* BatchEmbedContentsRequest.requests[{i}].content: text parts are required")
        text = " ".join(p["text"] for p in parts)
        embeddings.append({"values": embedding_vector(text, _dimension(item.get("outputDimensionality")))})
    return {"embeddings": embeddings}


def _vertex_predict(payload: JSON) -> JSON:
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise _invalid("instances must not be empty")
    dimension = _dimension((payload.get("parameters") or {}).get("outputDimensionality"))
    predictions = []
    for instance in instances:
        text = (instance or {}).get("content")
        if not isinstance(text, str):
            raise _invalid("Each instance needs a 'content' string.")
        statistics = {"token_count": count_tokens(text), "truncated": False}
        predictions.append({"embeddings": {"values": embedding_vector(text, dimension), "statistics": statistics}})
    return {"predictions": predictions}
