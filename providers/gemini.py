"""Google Gemini (the Gemini API and Vertex AI) behind the OpenAI API.

Two flavours of one protocol, as data (`Flavour`): `gemini` (`{base_url}/v1beta/models/
{model}:...`, header `x-goog-api-key`) and `vertex` (`{base_url}/v1/projects/{project}/
locations/{location}/publishers/google/models/{model}:...`, `Authorization: Bearer`).
This module is the OpenAI -> Gemini direction and the adapter; `gemini_stream` reads
Gemini's answers and errors, `gemini_schema` cleans JSON schemas.

What becomes of each OpenAI chat parameter (OpenAI -> Gemini):

- `model` -> the target's upstream model, in the URL.
- system / developer messages -> `systemInstruction.parts`, all of them, in order.
- user / assistant messages -> `contents` with role `user` / `model`; consecutive
  turns of one role are merged; a message's `name` is dropped (Gemini has no speakers).
- content parts: `text` -> `text`; `image_url` `data:` URI -> `inlineData`; https
  `image_url` -> `inlineData` of the image the router fetched (SSRF-guarded); images
  other than PNG, JPEG, WebP, HEIC, HEIF (e.g. GIF) -> 400; `detail` low/high ->
  `mediaResolution` (per part on Gemini 3, else `generationConfig.mediaResolution`; see
  `gemini_content`); `file` (a PDF as base64 `file_data`) -> `inlineData` application/pdf,
  `file_id` -> 400 (no Files API); `input_audio` -> `inlineData` audio/wav or audio/mp3;
  other parts -> 400.
- assistant `tool_calls` -> `functionCall {name, args}` parts (invalid JSON: 400).
- `tool` messages -> `functionResponse {name, response}` parts, a run of them in one
  user turn, in the order of the calls they answer; the name (and that order) is found
  by `tool_call_id`; a non-object result is wrapped `{"result": ...}`.
- `temperature`, `top_p`, `top_k` (vLLM's extension) -> `temperature`, `topP`, `topK`.
- `max_completion_tokens` (else `max_tokens`) -> `maxOutputTokens`.
- `stop` (string or list) -> `stopSequences`; `n` -> `candidateCount`.
- `seed`, `presence_penalty`, `frequency_penalty` -> `seed`, `presencePenalty`,
  `frequencyPenalty`.
- `response_format`: text -> nothing; json_object -> `responseMimeType:
  application/json`; json_schema -> that and, on Gemini 2.5 and later, the schema
  unchanged as `responseJsonSchema` (real JSON Schema: maps, `$ref`, unions), on older
  models `responseSchema` cleaned to Gemini's subset (see `gemini_schema`).
- `tools` (function tools only) -> one `{functionDeclarations: [...]}`, parameters as
  `parametersJsonSchema` (2.5 and later) or cleaned `parameters` (older; inexpressible: 400);
  `strict: true` on a tool -> `functionCallingConfig.mode: VALIDATED` where the choice is auto.
- `reasoning_effort` -> `thinkingConfig` (see `gemini_reasoning`); thought summaries come
  back as `reasoning_content`, `thoughtsTokenCount` as `reasoning_tokens`.
- `presence_penalty`, `frequency_penalty` other than 0 on Gemini 2.5 and later: 400 naming
  it (those models refuse penalties), unless the route table drops it.
- `tool_choice` auto / none / required / named -> `functionCallingConfig.mode` AUTO /
  NONE / ANY / ANY with `allowedFunctionNames`.
- `cache_control` marks (Anthropic's) -> dropped: Gemini caches implicitly, and reports
  the cached tokens (`cachedContentTokenCount`) as `prompt_tokens_details.cached_tokens`.
- finishReason `MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`
  (no usable answer) -> a 502 naming it (see `gemini_stream`).
- `stream`, `stream_options.include_usage` -> `:streamGenerateContent?alt=sse`; the
  usage chunk is made by the stream translator.
- `parallel_tool_calls` -> dropped: Gemini decides by itself whether to call several
  functions at once, and cannot be told not to.
- `user`, `safety_identifier`, `prompt_cache_key`, `metadata`, `store`,
  `service_tier` -> dropped: bookkeeping that does not change the answer.
- `logprobs: true` -> `responseLogprobs: true`, `top_logprobs` -> `logprobs` (0-20; needs
  `logprobs: true`); Gemini's `logprobsResult` comes back as OpenAI `logprobs.content`.
- `logit_bias`, `functions`, `function_call`, `audio`, `modalities` other than
  `["text"]`, `prediction`, `verbosity`, `web_search_options`
  and any other field -> 400 naming the parameter (an explicit null is accepted).

Embeddings: `input` (string or list of strings; token arrays: 400, the router decodes them
to text first) -> `batchEmbedContents` (Gemini API) or `:predict` instances (Vertex AI), at
most `embedding_batch_size` inputs a call (the router splits larger requests); `dimensions`
-> `outputDimensionality`, the reduced vectors normalised; `encoding_format: base64` is
produced here from the floats; `user` is dropped.

Vertex credentials (a static token, a token file or a token command) are in `vertex_auth`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from providers.base import (
    JSON,
    SHAPE_ERRORS,
    ApiRequest,
    InlineImage,
    Operation,
    StreamState,
    UpstreamCall,
    UpstreamError,
    Usage,
    checked_count,
    dumps,
    invalid_param,
    malformed_answer,
    turn_key,
)
from providers.gemini_content import request_media_resolution, text_parts, user_parts
from providers.gemini_reasoning import call_state, sign_model_turn, state_of, thinking_config
from providers.gemini_schema import clean_schema, is_empty_object, tool_choice_to_config, tools_to_declarations
from providers.gemini_stream import (
    GeminiStreamTranslator,
    embeddings_from_gemini,
    error_from_body,
    estimate_tokens,
    response_to_openai,
)
from providers.model_rules import GeminiRules, gemini_rules
from providers.settings import ProviderSettings
from providers.vertex_auth import credential_for


@dataclass(frozen=True, slots=True, kw_only=True)
class Flavour:
    kind: str
    model_url: str  # template over base, project, location and model
    bearer_auth: bool  # Authorization: Bearer, else x-goog-api-key
    embed_action: str  # "batchEmbedContents" (Gemini API) or "predict" (Vertex AI)


FLAVOURS = {
    "gemini": Flavour(kind="gemini", model_url="{base}/v1beta/models/{model}", bearer_auth=False,
                      embed_action="batchEmbedContents"),
    "vertex": Flavour(kind="vertex", bearer_auth=True, embed_action="predict",
                      model_url="{base}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}"),
}


# --- chat request ---------------------------------------------------------------------

_TRANSLATED = frozenset({
    "model", "messages", "temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "stop", "n",
    "seed", "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice", "stream",
    "stream_options", "logprobs", "top_logprobs", "reasoning_effort",
})  # fmt: skip
_DROPPED = frozenset(
    {"parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key", "metadata", "store", "service_tier"}
)
_NUMBERS = (
    ("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
    ("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"),
)  # fmt: skip


def chat_to_gemini(body: JSON, images: Mapping[str, InlineImage], upstream_model: str = "",
                   given: Mapping[str, JSON] | None = None) -> JSON:
    """An OpenAI chat request as a Gemini GenerateContentRequest (pure); `given`: the
    opaque state of the request's assistant turns (see `gemini_reasoning`)."""
    _check_parameters(body)
    rules = gemini_rules(upstream_model)
    per_part_media = rules.thinking == "level"  # Gemini 3 sets a resolution on each part
    system, contents = messages_to_contents(body.get("messages"), images, given or {}, rules.signatures_required,
                                            per_part_media)
    request: JSON = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = body.get("tools")
    if tools:
        request["tools"] = [{"functionDeclarations": tools_to_declarations(tools, rules.json_schema)}]
    tool_config = tool_choice_to_config(body.get("tool_choice"), bool(tools))
    if tools and rules.json_schema and _any_strict(tools) and (tool_config or {}).get("mode") in (None, "AUTO"):
        tool_config = {"mode": "VALIDATED"}  # calls that follow the schema, as OpenAI's strict
    if tool_config:
        request["toolConfig"] = {"functionCallingConfig": tool_config}
    config = generation_config(body, rules)
    resolution = None if per_part_media else request_media_resolution(body.get("messages"))
    if resolution:
        config["mediaResolution"] = resolution
    if config:
        request["generationConfig"] = config
    return request


def _any_strict(tools: Any) -> bool:
    return isinstance(tools, list) and any(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("strict") is True
        for t in tools)


def _check_parameters(body: JSON) -> None:
    for name, value in body.items():
        if name in _TRANSLATED or name in _DROPPED or value is None:
            continue
        if name == "modalities" and value == ["text"]:
            continue
        raise invalid_param(name, f"'{name}' is not supported for Gemini models")


def messages_to_contents(messages: Any, images: Mapping[str, InlineImage], given: Mapping[str, JSON] | None = None,
                         signatures_required: bool = False, per_part_media: bool = False
                         ) -> tuple[list[JSON], list[JSON]]:
    """(systemInstruction parts, contents). Consecutive turns of one role are merged,
    which also puts every tool result of a run into one user turn, in the order of the
    calls they answer (Gemini pairs same-named calls and responses by position)."""
    if not isinstance(messages, list) or not messages:
        raise invalid_param("messages", "'messages' must be a non-empty list")
    system: list[JSON] = []
    contents: list[JSON] = []
    calls: dict[str, tuple[str, int, JSON]] = {}  # tool_call_id -> (function name, place in its turn, state)
    results: list[tuple[int, JSON]] = []  # a run of tool messages, put in call order when it ends
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid_param(param, f"'{param}' must be an object")
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in calls:
                raise invalid_param(f"{param}.tool_call_id",
                                    f"'{param}.tool_call_id' matches no earlier assistant tool call")
            name, place, kept = calls[call_id]
            results.append((place, _function_response(name, message.get("content"), kept.get("id"))))
            continue
        _append_turn(contents, "user", _in_call_order(results))
        results.clear()
        if role in ("system", "developer"):
            system.extend(text_parts(message.get("content"), f"{param}.content"))
        elif role == "user":
            _append_turn(contents, "user", user_parts(message.get("content"), f"{param}.content", images,
                                                      per_part_media))
        elif role == "assistant":
            state = state_of(given or {}, turn_key(message))
            parts = _assistant_parts(message, param, calls, state)
            sign_model_turn(parts, state, signatures_required)
            _append_turn(contents, "model", parts)
        elif role == "function" and isinstance(message.get("name"), str):
            _append_turn(contents, "user", [_function_response(message["name"], message.get("content"))])
        else:
            raise invalid_param(f"{param}.role", f"'{param}.role' {role!r} is not supported")
    _append_turn(contents, "user", _in_call_order(results))
    if not contents:
        raise invalid_param("messages", "Gemini needs at least one user or assistant message besides system messages")
    return system, contents


def _in_call_order(results: list[tuple[int, JSON]]) -> list[JSON]:
    return [part for _, part in sorted(results, key=lambda result: result[0])]


def _append_turn(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _assistant_parts(message: JSON, param: str, calls: dict[str, tuple[str, int, JSON]],
                     state: JSON | None) -> list[JSON]:
    parts = text_parts(message.get("content"), f"{param}.content")
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise invalid_param(f"{param}.tool_calls", f"'{param}.tool_calls' must be a list")
    for k, call in enumerate(tool_calls):
        call_param = f"{param}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid_param(call_param, f"'{call_param}' must be a function call with a name")
        arguments = function.get("arguments") or "{}"
        try:
            args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            raise invalid_param(f"{call_param}.function.arguments",
                                f"'{call_param}.function.arguments' is not valid JSON") from None
        if not isinstance(args, dict):
            raise invalid_param(f"{call_param}.function.arguments",
                                f"'{call_param}.function.arguments' must be a JSON object")
        kept = call_state(state, call.get("id"))
        if isinstance(call.get("id"), str):
            calls[call["id"]] = (function["name"], k, kept)
        function_call: JSON = {"name": function["name"], "args": args}
        if "id" in kept:
            function_call["id"] = kept["id"]
        part: JSON = {"functionCall": function_call}
        if "thoughtSignature" in kept:
            part["thoughtSignature"] = kept["thoughtSignature"]
        parts.append(part)
    return parts


def _function_response(name: str, content: Any, call_id: Any = None) -> JSON:
    """Gemini wants an object: a JSON object result is sent as is, anything else as
    `{"result": <the parsed JSON value, or the text>}`."""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    value: Any = content
    if isinstance(content, str):
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            value = content
    response = value if isinstance(value, dict) else {"result": value}
    function_response: JSON = {"name": name, "response": response}
    if isinstance(call_id, str):
        function_response["id"] = call_id  # Gemini's own id of the call this answers
    return {"functionResponse": function_response}


def generation_config(body: JSON, rules: GeminiRules | None = None) -> JSON:
    rules = rules or GeminiRules(thinking="")
    config: JSON = {}
    for openai_name, gemini_name in _NUMBERS:
        value = body.get(openai_name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid_param(openai_name, f"'{openai_name}' must be a number")
        if rules.no_penalties and openai_name.endswith("_penalty"):
            if value == 0:
                continue
            raise invalid_param(openai_name, f"this Gemini model does not take '{openai_name}'; leave it out "
                                             "(or name it in the model's drop_params)")
        config[gemini_name] = value
    thinking = thinking_config(body, rules)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    limit = body.get("max_completion_tokens")
    limit_param = "max_completion_tokens" if limit is not None else "max_tokens"
    limit = body.get(limit_param)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise invalid_param(limit_param, f"'{limit_param}' must be a positive integer")
        config["maxOutputTokens"] = limit
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid_param("stop", "'stop' must be a string or a list of strings")
        if stops:
            config["stopSequences"] = stops
    config.update(_response_format(body.get("response_format"), rules.json_schema))
    config.update(_logprobs(body))
    return config


def _logprobs(body: JSON) -> JSON:
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20):
        raise invalid_param("top_logprobs", "'top_logprobs' must be an integer from 0 to 20")
    if body.get("logprobs") is not True:
        if top is not None:
            raise invalid_param("top_logprobs", "'top_logprobs' needs 'logprobs': true")
        return {}
    return {"responseLogprobs": True} | ({"logprobs": top} if top is not None else {})


def _response_format(response_format: Any, json_schema: bool) -> JSON:
    kind = response_format.get("type") if isinstance(response_format, dict) else response_format
    if kind in (None, "text"):
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        out: JSON = {"responseMimeType": "application/json"}
        if json_schema and isinstance(schema, dict) and schema:
            out["responseJsonSchema"] = schema
            return out
        cleaned = clean_schema(schema, "response_format.json_schema.schema") if schema is not None else {}
        if not is_empty_object(cleaned):  # "any object" is what json_object already asks for
            out["responseSchema"] = cleaned
        return out
    raise invalid_param("response_format", "'response_format' must be text, json_object or json_schema")


# --- embeddings -----------------------------------------------------------------------

_EMBEDDING_PARAMETERS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def embedding_texts(body: JSON) -> list[str]:
    for name, value in body.items():
        if name not in _EMBEDDING_PARAMETERS and value is not None:
            raise invalid_param(name, f"'{name}' is not supported for Gemini embedding models")
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise invalid_param("input", "'input' must be a string or a non-empty list of strings")
    if not all(isinstance(t, str) for t in texts):
        raise invalid_param("input", "Gemini embedding models take text only, not token arrays")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise invalid_param("encoding_format", "'encoding_format' must be float or base64")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise invalid_param("dimensions", "'dimensions' must be a positive integer")
    return texts


def embeddings_to_gemini(body: JSON, upstream_model: str, embed_action: str) -> JSON:
    texts = embedding_texts(body)
    dimensions = body.get("dimensions")
    if embed_action == "predict":  # Vertex AI text-embedding models
        request: JSON = {"instances": [{"content": text} for text in texts]}
        if dimensions:
            request["parameters"] = {"outputDimensionality": dimensions}
        return request
    extra = {"outputDimensionality": dimensions} if dimensions else {}
    model = f"models/{upstream_model}"
    return {"requests": [{"model": model, "content": {"parts": [{"text": text}]}, **extra} for text in texts]}


# batchEmbedContents: "at most 100 requests can be in one batch" (its 400 INVALID_ARGUMENT).
GEMINI_EMBED_BATCH = 100
# Vertex AI text embeddings (cloud.google.com/vertex-ai/generative-ai/docs/embeddings/get-text-embeddings,
# "API limits"): at most 250 input texts a request, and gemini-embedding-001 (the newer models)
# "supports a single instance per request".
VERTEX_EMBED_BATCH = 250
VERTEX_SINGLE_INSTANCE_PREFIXES = ("gemini-embedding-",)


def embedding_batch_size(kind: str, upstream_model: str) -> int:
    if kind != "vertex":
        return GEMINI_EMBED_BATCH
    return 1 if upstream_model.startswith(VERTEX_SINGLE_INSTANCE_PREFIXES) else VERTEX_EMBED_BATCH


# --- the adapter ----------------------------------------------------------------------


class GeminiAdapter:
    inlines_image_urls = True

    def __init__(self, config: ProviderSettings, flavour: Flavour) -> None:
        self.kind = flavour.kind
        self._flavour = flavour
        self._model_url = flavour.model_url.replace("{base}", config.base_url.rstrip("/"))
        self._model_url = self._model_url.replace("{project}", quote(config.project or "", safe=""))
        self._model_url = self._model_url.replace("{location}", quote(config.location or "", safe=""))
        self._credential = credential_for(config)

    def embedding_batch_size(self, upstream_model: str) -> int:
        return embedding_batch_size(self.kind, upstream_model)

    def to_upstream(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        model_url = self._model_url.replace("{model}", quote(upstream_model, safe=""))
        if request.operation is Operation.CHAT:
            payload = chat_to_gemini(request.body, request.images, upstream_model, request.carried.given)
            action = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        elif request.operation is Operation.EMBEDDINGS:
            payload = embeddings_to_gemini(request.body, upstream_model, self._flavour.embed_action)
            action = self._flavour.embed_action
        else:
            raise invalid_param("model", f"Gemini models do not serve {request.operation.value}")
        return UpstreamCall(f"{model_url}:{action}", self._headers(), dumps(payload))

    def count_tokens_call(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        """Gemini's own count of a chat request's prompt (`countTokens`)."""
        model_url = self._model_url.replace("{model}", quote(upstream_model, safe=""))
        payload = chat_to_gemini(request.body, request.images)
        if not self._flavour.bearer_auth:  # the Gemini API counts a whole request only wrapped, with its model
            payload = {"generateContentRequest": {"model": f"models/{upstream_model}", **payload}}
        return UpstreamCall(f"{model_url}:countTokens", self._headers(), dumps(payload))

    def count_of(self, body: bytes) -> int:
        try:
            return checked_count(orjson.loads(body).get("totalTokens"), "Gemini")
        except (orjson.JSONDecodeError, AttributeError):
            raise malformed_answer("Gemini") from None

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self._credential is None:
            return headers
        secret = self._credential.current()
        if self._flavour.bearer_auth:
            headers["authorization"] = f"Bearer {secret}"
        else:
            headers["x-goog-api-key"] = secret
        return headers

    def from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
        try:
            return self._from_upstream(request, body)
        except SHAPE_ERRORS:
            raise malformed_answer("Gemini") from None

    def _from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamError(502, "Gemini answered a body that is not JSON", retryable=False) from None
        if not isinstance(payload, dict):
            raise UpstreamError(502, "Gemini answered a body that is not a JSON object", retryable=False)
        if request.operation is Operation.EMBEDDINGS:
            out, usage = embeddings_from_gemini(payload, embedding_texts(request.body), request)
            return dumps(out), usage
        state = StreamState(request.public_model, False)
        response, reported = response_to_openai(payload, request.public_model, state.id, state.created,
                                                request.carried)
        usage = reported or _estimated_chat_usage(request.body, response)
        if reported is None:
            response["usage"] = usage.to_openai()
        return dumps(response), usage

    def stream_translator(self, request: ApiRequest) -> GeminiStreamTranslator:
        return GeminiStreamTranslator(StreamState(request.public_model, request.include_usage), request.carried)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return error_from_body(status, headers, body)

    async def refresh_credentials(self) -> None:
        """Fetch a fresh Vertex token now (token_command) or re-read the token file.
        The router may call this at start and periodically; it is never required."""
        if self._credential is not None:
            await self._credential.refresh()


def _estimated_chat_usage(body: JSON, response: JSON) -> Usage:
    """Gemini always sends usageMetadata; should it not, ~4 characters a token."""
    prompt = orjson.dumps(body.get("messages") or []).decode()
    answers = "".join(c["message"].get("content") or "" for c in response["choices"])
    return Usage(prompt_tokens=estimate_tokens(prompt), completion_tokens=(len(answers) + 3) // 4, estimated=True)


ADAPTERS = {kind: functools.partial(GeminiAdapter, flavour=flavour) for kind, flavour in FLAVOURS.items()}
