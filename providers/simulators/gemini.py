"""A simulator of the Gemini API (and of Vertex AI's path form of it), for `llm-router
demo` and the tests.

Strict where the real service is (`gemini_checks`): an API key (or, on the Vertex
path, a bearer token) is required; only the roles `user` and `model` exist; function
declarations and response schemas may use only the OpenAPI-subset keys
(`additionalProperties`, `$ref`, ... are unknown names), OBJECTs need properties and
enums are strings; inline data must be valid base64 of a supported MIME type; a
function-call turn must follow a user turn and a function-response turn must follow it
with as many responses.

Answers are deterministic: a text (`reply_text`), or, with tools and a prompt naming a
tool or mentioning "weather" (or mode ANY), calls to them (one per city when several
known cities are named); after function responses it answers text; "unsafe" in the
prompt ends with finishReason SAFETY, "malformed call" with tools with
MALFORMED_FUNCTION_CALL and no content. With `responseMimeType: application/json` the
text is JSON: an instance of `responseSchema`/`responseJsonSchema`, else an object;
`candidateCount` candidates. Embeddings have 768 dimensions (or the model's own, given
to `create_app`), derived from the text. Streams (`alt=sse`) are CRLF-framed like the
real recordings.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from providers.base import JSON, dumps
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
from providers.simulators.gemini_checks import (
    RPC_STATUS,
    GeminiError,
    authenticate,
    check_model,
    invalid,
    json_object,
    validate_generate,
)
from providers.simulators.gemini_modern import modernise, thinks, validate_modern
from providers.simulators.schema_instance import schema_instance

EMBEDDING_DIMENSION = 768
MAX_EMBED_BATCH = 100  # batchEmbedContents' own 400: "at most 100 requests can be in one batch"
MAX_VERTEX_INSTANCES = 250
CITIES = (
    "Paris", "London", "Berlin", "Hamburg", "Munich", "Frankfurt", "Vienna", "Zurich", "Amsterdam", "Madrid",
    "Barcelona", "Rome", "Milan", "Lisbon", "Dublin", "Stockholm", "Oslo", "Copenhagen", "Prague", "Warsaw",
    "Tokyo", "Seoul", "Beijing", "Shanghai", "Singapore", "Mumbai", "Sydney", "Dubai", "Cairo", "Toronto",
    "New York", "Boston", "Chicago", "Seattle", "San Francisco", "Los Angeles",
)  # fmt: skip


_DIMENSIONS = web.AppKey("dimensions", Mapping)


def create_app(dimensions: Mapping[str, int] | None = None) -> web.Application:
    """`dimensions`: embedding model -> its dimension (default 768), kept by reference."""
    app = new_state_app()
    app[_DIMENSIONS] = dimensions if dimensions is not None else {}
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
        authenticate(request, vertex)
        streaming = action == "streamGenerateContent" and request.query.get("alt") == "sse"
        if fault is not None and fault.status is not None and not (streaming and fault.drop_after_chunks is not None):
            raise _fault_error(fault)
        if fault is not None and fault.garbage and not streaming:
            return web.Response(status=200, text="<html><body>Bad Gateway</body></html>", content_type="text/html")
        if fault is not None and fault.endless and not streaming:
            return await endless_body(request, state, fault)
        payload = json_object(body)
        if action in ("generateContent", "streamGenerateContent"):
            check_model(model, embedding=False)
            validate_generate(payload, vertex)
            validate_modern(payload, model)
            answer = answer_for(payload, model)
            if action == "generateContent":
                return web.json_response(answer.response())
            return await _stream(request, state, fault, answer)
        if action == "countTokens":  # the API's own count of a prompt (generateContentRequest or the parts)
            check_model(model, embedding=False)
            generate = dict(payload.get("generateContentRequest", payload))
            if "generateContentRequest" in payload and generate.pop("model", None) != f"models/{model}":
                raise GeminiError(400, "generateContentRequest.model: must name the model counted, models/{model}")
            validate_generate(generate, vertex)
            return web.json_response({"totalTokens": answer_for(generate, model).prompt_tokens})
        check_model(model, embedding=True)
        dimension = request.app[_DIMENSIONS].get(model, EMBEDDING_DIMENSION)
        if action == "batchEmbedContents" and not vertex:
            return web.json_response(_batch_embed(payload, model, dimension))
        if action == "predict" and vertex:
            return web.json_response(_vertex_predict(payload, model, dimension))
        raise GeminiError(404, f"Method {action!r} is not found for models/{model}.")
    except GeminiError as error:
        return error.response(fault.retry_after if fault is not None else None)


def _fault_error(fault: Fault) -> GeminiError:
    status = fault.status or 500
    details: list[JSON] = []
    if status == 429 and fault.retry_after is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{fault.retry_after:g}s"})
    messages = {429: "You exceeded your current quota, please check your plan and billing details.",
                503: "The model is overloaded. Please try again later."}  # fmt: skip
    return GeminiError(status, messages.get(status, f"Simulated error {status}."), details)


# --- answers --------------------------------------------------------------------------


@dataclass
class Answer:
    model: str
    parts: list[JSON]
    finish_reason: str
    prompt_tokens: int
    candidates: int = 1
    thoughts: int = 0  # thinking tokens (thoughtsTokenCount)
    response_id: str = field(default_factory=lambda: uuid.uuid4().hex[:22])

    @property
    def completion_tokens(self) -> int:
        return sum(count_tokens(p.get("text") or str(p.get("functionCall", ""))) for p in self.parts
                   if not p.get("thought"))

    def usage(self, completion_tokens: int) -> JSON:
        total = self.prompt_tokens + completion_tokens + self.thoughts
        usage = {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": completion_tokens,
                 "totalTokenCount": total}  # fmt: skip
        if self.thoughts:
            usage["thoughtsTokenCount"] = self.thoughts
        return usage

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


def answer_for(payload: JSON, model: str) -> Answer:
    """The deterministic answer to a (validated) GenerateContentRequest; tests use it to
    know what the simulator said. Thinking models think (thoughtsTokenCount, summaries when
    asked) and Gemini 3 signs its turns (`gemini_modern`)."""
    answer = _plain_answer(payload, model)
    prompt = _texts(payload["contents"][-1])
    if thinks(payload, model):
        answer.thoughts = 24 + count_tokens(prompt)
    if answer.finish_reason != "SAFETY":
        answer.parts = modernise(answer.parts, payload, model, prompt)
    return answer


def _plain_answer(payload: JSON, model: str) -> Answer:
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
        # A result that names a declared function again (say, "now ask get_weather for Berlin") makes
        # the model call it again: an agent's second tool turn.
        said = " ".join(dumps(r.get("response")).decode() for r in responses)
        calls = _function_calls(payload.get("tools") or [], calling, said) if calling.get("mode") != "NONE" else []
        if any(call["name"].lower() in said.lower() for call in calls):
            answer.parts = [{"functionCall": call} for call in calls]
            return answer
    elif payload.get("tools") and "malformed call" in prompt.lower():
        # The model's failed function call: no content at all (as recorded by client issues).
        answer.finish_reason = "MALFORMED_FUNCTION_CALL"
        return answer
    elif "unsafe" in prompt.lower():
        answer.parts, answer.finish_reason = [{"text": " ".join(reply_text(prompt).split()[:3])}], "SAFETY"
        return answer
    elif payload.get("tools") and calling.get("mode") != "NONE":
        calls = _function_calls(payload["tools"], calling, prompt)
        if calls:
            answer.parts = [{"functionCall": call} for call in calls]
            return answer
    structured = _structured(config, prompt)
    if structured is not None:  # JSON is never cut short, or it would not parse
        answer.parts = [{"text": structured}]
        return answer
    text = reply_text(prompt, limit)
    if limit is not None and len(reply_text(prompt).split()) > limit:
        answer.finish_reason = "MAX_TOKENS"
    answer.parts = [{"text": text}]
    return answer


def _structured(config: JSON, prompt: str) -> str | None:
    """`responseMimeType: application/json`: an instance of `responseSchema` (Gemini's
    OpenAPI subset) or `responseJsonSchema`, else a JSON object; None for plain text."""
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseSchema", config.get("responseJsonSchema"))
    if schema is None:
        return dumps({"answer": reply_text(prompt)}).decode()
    return dumps(schema_instance(schema)).decode()


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
        args = tool_arguments(_lower_types(declaration.get("parameters") or declaration.get("parametersJsonSchema")
                                           or {}))
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
    thoughts = [p for p in answer.parts if p.get("thought")]
    parts = [p for p in answer.parts if not p.get("thought")]
    if thoughts:  # thought summaries come first, in chunks of their own
        yield answer.chunk(thoughts, None, 0)
    text = "".join(p.get("text", "") for p in parts)
    if not text or any("functionCall" in p for p in parts):
        yield answer.chunk(parts, answer.finish_reason, answer.completion_tokens)
        return
    signature = next((p["thoughtSignature"] for p in parts if "thoughtSignature" in p), None)
    words = split_words(text)
    for n, word in enumerate(words, start=1):
        last = n == len(words)
        finish = answer.finish_reason if last and signature is None else None
        yield answer.chunk([{"text": word}], finish, count_tokens("".join(words[:n])))
    if signature is not None:  # as recorded: the signature on a last, empty text part with the finish
        yield answer.chunk([{"text": "", "thoughtSignature": signature}], answer.finish_reason,
                           answer.completion_tokens)


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
            if fault is not None and fault.no_usage:
                chunk.pop("usageMetadata", None)
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


# --- embeddings -----------------------------------------------------------------------


def embedding_vector(text: str, dimension: int = EMBEDDING_DIMENSION) -> list[float]:
    """A unit vector that depends only on the text."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def reduced_vector(text: str, model_dimension: int, dimension: int) -> list[float]:
    """`outputDimensionality` below the model's own: the first values of the full vector
    (Matryoshka), not normalised again. Google: "The 3072 dimension embedding is normalized
    ... For other dimensions, including 768 and 1536, you need to normalize the embeddings"
    (ai.google.dev/gemini-api/docs/embeddings, "Ensuring quality for smaller dimensions")."""
    return embedding_vector(text, model_dimension)[:dimension]


def _dimension(value: Any, model_dimension: int) -> int:
    """`outputDimensionality` truncates the model's own dimension, never exceeds it."""
    if value is None:
        return model_dimension
    if not isinstance(value, int) or not 1 <= value <= model_dimension:
        raise invalid(f"* outputDimensionality must be between 1 and {model_dimension}.")
    return value


def _batch_embed(payload: JSON, model: str, model_dimension: int) -> JSON:
    requests = payload.get("requests")
    if not isinstance(requests, list) or not requests:
        raise invalid("* BatchEmbedContentsRequest.requests: requests must not be empty")
    if len(requests) > MAX_EMBED_BATCH:
        raise invalid(f"* BatchEmbedContentsRequest.requests: at most {MAX_EMBED_BATCH} requests can be in one batch")
    embeddings = []
    for i, item in enumerate(requests):
        if not isinstance(item, dict) or item.get("model") != f"models/{model}":
            raise invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: the model must be models/{model}")
        parts = (item.get("content") or {}).get("parts") or []
        if not parts or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
            raise invalid(f"* BatchEmbedContentsRequest.requests[{i}].content: text parts are required")
        text = " ".join(p["text"] for p in parts)
        dimension = _dimension(item.get("outputDimensionality"), model_dimension)
        embeddings.append({"values": reduced_vector(text, model_dimension, dimension)})
    return {"embeddings": embeddings}


def _vertex_predict(payload: JSON, model: str, model_dimension: int) -> JSON:
    instances = payload.get("instances")
    if not isinstance(instances, list) or not instances:
        raise invalid("instances must not be empty")
    # Vertex AI text embeddings, "API limits": at most 250 input texts a request; the newer
    # gemini-embedding-001 "supports a single instance per request"
    # (cloud.google.com/vertex-ai/generative-ai/docs/embeddings/get-text-embeddings).
    most = 1 if model.startswith("gemini-embedding-") else MAX_VERTEX_INSTANCES
    if len(instances) > most:
        raise invalid(f"Unable to submit request because {model} supports at most {most} instance"
                      f"{'s' if most != 1 else ''} per request; {len(instances)} were given.")
    dimension = _dimension((payload.get("parameters") or {}).get("outputDimensionality"), model_dimension)
    predictions = []
    for instance in instances:
        text = (instance or {}).get("content")
        if not isinstance(text, str):
            raise invalid("Each instance needs a 'content' string.")
        statistics = {"token_count": count_tokens(text), "truncated": False}
        vector = reduced_vector(text, model_dimension, dimension)
        predictions.append({"embeddings": {"values": vector, "statistics": statistics}})
    return {"predictions": predictions}
