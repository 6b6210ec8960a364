"""OpenAI chat <-> Anthropic Messages API, for `anthropic` and `anthropic-vertex`.

The two kinds differ only in data (`AnthropicVariant`): URL, auth header, and where
the model and the API version go. Vertex's bearer token (api_key, token_file or
token_command) comes from `providers.vertex_auth`, shared with Gemini on Vertex.
Translation is pure; the stream part lives in `providers.anthropic_stream`.

What becomes of each OpenAI chat parameter (rejections are 400
`invalid_request_error` naming the parameter in `param`, before any upstream call):

| OpenAI                          | Anthropic                                                          |
|---------------------------------|--------------------------------------------------------------------|
| `model`                         | the target's upstream model (body on anthropic, URL on vertex)     |
| `messages` system / developer   | top-level `system` text blocks, in order, wherever they were       |
| `messages` user / assistant     | `messages`; consecutive same-role turns merged into one            |
| `messages` tool                 | `tool_result` blocks in one user turn (a turn's results together); |
|                                 | empty content left out                                             |
| assistant `tool_calls`          | `tool_use` blocks (arguments parsed; invalid JSON: 400); ids with  |
|                                 | other characters than `[A-Za-z0-9_-]` mapped to `_` in both places |
| `image_url` `data:` URI         | base64 image (jpeg, png, gif, webp; any other type: 400); the type |
|                                 | the bytes show wins over the declared one (the API checks it)      |
| `image_url` https URL           | URL image (anthropic); the router's fetched copy as base64 (vertex)|
| `image_url.detail`, msg `name`  | dropped: no equivalent, no effect on the answer's form             |
| `cache_control` on a part, a    | `cache_control` on that block / the message's last block / the tool|
| message or a tool               | (see `providers.anthropic_cache`); more than 4: 400 naming the 5th |
| `file` part (PDF `file_data`)   | base64 `document` block; `file_id` or another type: 400            |
| empty text parts, empty turns   | left out (the API refuses empty content; they say nothing)         |
| assistant `refusal` parts       | text blocks                                                        |
| `input_audio` parts             | 400                                                                |
| `max_completion_tokens`         | `max_tokens` (first choice)                                        |
| `max_tokens`                    | `max_tokens`; absent: the model's max_output_length, else 4096     |
| `temperature`                   | `temperature` if 0..1; above 1: 400 (clamping would change meaning)|
| `top_p`                         | `top_p`                                                            |
| `stop` (string or list)         | `stop_sequences` (list); empty or whitespace-only ones: 400 (the   |
|                                 | API refuses them; dropping one would change where the answer ends) |
| `user` / `safety_identifier`    | `metadata.user_id`                                                 |
| `stream`                        | `stream`                                                           |
| `stream_options`                | dropped (include_usage is the router's, honoured by the translator)|
| `tools` (function)              | `tools[{name, description, input_schema}]`; other tool types: 400  |
| `tools[].function.strict`       | see `providers.anthropic_reasoning`                                |
| `tool_choice`                   | auto/none/required/named -> `{type: auto/none/any/tool}`; required |
|                                 | or named without `tools`: 400                                      |
| no `tools`, but `tool_calls` or | the tools the history called (name, object schema) with            |
| `tool` messages in the history  | `tool_choice: none` (the API refuses tool blocks without tools)    |
| `parallel_tool_calls`           | false: `tool_choice.disable_parallel_tool_use`; true: default      |
| `n`                             | 1: dropped; more: 400                                              |
| `seed`                          | dropped (best-effort only, even on OpenAI)                         |
| `logprobs`, `top_logprobs`      | false / 0: dropped; otherwise 400                                  |
| `frequency_penalty`, `presence_penalty` | 0: dropped; otherwise 400                                  |
| `logit_bias`                    | empty: dropped; otherwise 400                                      |
| `response_format`, `reasoning_effort` | see `providers.anthropic_reasoning` (per model)              |
| `temperature` + `top_p`         | Claude 4.5+ and Opus 4.1: 400 naming top_p (unless drop_params)    |
| `service_tier`, `store`, `metadata`, `prompt_cache_key`, `prediction` | dropped: OpenAI-side bookkeeping |
| `modalities`                    | `["text"]`: dropped; otherwise 400                                 |
| `audio`, `verbosity`, `web_search_options`, `functions`, `function_call` | 400 |
| `top_k` (not OpenAI; Anthropic's own) | `top_k`                                                      |
| anything else                   | 400 naming it (never silently dropped)                             |
| any parameter set to `null`     | as if absent (OpenAI's meaning of null)                            |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from providers.anthropic_cache import cache_mark, check_breakpoints, mark_last
from providers.anthropic_content import text_blocks, texts_of, user_blocks
from providers.anthropic_passthrough import PassthroughStream, allowed_betas, answer_usage, rewrite_model
from providers.anthropic_reasoning import (
    Structured,
    Thinking,
    answer_tool_fields,
    check_sampling,
    continues_tool_use_without_thinking,
    fit_budget,
    structured_for,
    structured_tool_name,
    thinking_for,
    with_thinking,
)
from providers.anthropic_stream import AnthropicStreamTranslator, from_anthropic_response, parse_anthropic_error
from providers.base import (
    JSON,
    SHAPE_ERRORS,
    ApiRequest,
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
from providers.model_rules import claude_rules
from providers.settings import ProviderSettings
from providers.vertex_auth import credential_for

DEFAULT_MAX_TOKENS = 4096
_TOOL_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

# Parameters with no Anthropic equivalent that change nothing when left out, and the
# values under which that holds (None: any value).
HARMLESS: dict[str, tuple[Any, ...] | None] = {
    "n": (None, 1),
    "seed": None,
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "stream_options": None,
    "parallel_tool_calls": (None, True, False),  # false is translated, see _tool_choice
    "service_tier": None,
    "store": None,
    "metadata": None,
    "prompt_cache_key": None,
    "prediction": None,
    "modalities": (None, ["text"]),
}
# Parameters the translation below consumes.
TRANSLATED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "user",
        "safety_identifier",
        "stream",
        "tools",
        "tool_choice",
        "top_k",
        "response_format",
        "reasoning_effort",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AnthropicVariant:
    """Where one flavour of the Messages API differs from the others."""

    kind: str
    path: str  # appended to base_url; {project} {location} {model} {method} filled in
    plain_method: str  # {method} for a plain call ...
    stream_method: str  # ... and for a streamed one
    bearer_auth: bool  # Authorization: Bearer (vertex) instead of x-api-key
    model_in_body: bool
    version_in_body: str | None  # body `anthropic_version`; None: `anthropic-version` header
    inlines_image_urls: bool


ANTHROPIC = AnthropicVariant(kind="anthropic", path="/v1/messages", plain_method="", stream_method="",
                             bearer_auth=False, model_in_body=True, version_in_body=None, inlines_image_urls=False)
ANTHROPIC_VERTEX = AnthropicVariant(
    kind="anthropic-vertex",
    path="/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:{method}",
    plain_method="rawPredict", stream_method="streamRawPredict", bearer_auth=True, model_in_body=False,
    version_in_body="vertex-2023-10-16", inlines_image_urls=True)


class AnthropicAdapter:

    def __init__(self, config: ProviderSettings, variant: AnthropicVariant) -> None:
        self.config = config
        self.variant = variant
        self.kind = variant.kind
        self.inlines_image_urls = variant.inlines_image_urls
        # Vertex's bearer token: api_key, token_file or token_command, as for Gemini on Vertex.
        self._credential = credential_for(config) if variant.bearer_auth else None

    def to_upstream(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        variant, config = self.variant, self.config
        if request.passthrough:  # the client's own Messages body, only its model changed
            raw = rewrite_model(request.source_raw, upstream_model, None if variant.model_in_body
                                else variant.version_in_body)
        else:
            raw = dumps(to_anthropic_request(request, upstream_model, variant))
        path = variant.path.format(
            project=config.project,
            location=config.location,
            model=upstream_model,
            method=variant.stream_method if request.stream else variant.plain_method,
        )
        return UpstreamCall(url=config.base_url.rstrip("/") + path, headers=self._headers(request), body=raw)

    def _headers(self, request: ApiRequest) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        # Without a credential the header is left out: the upstream then says which one is missing.
        if self.variant.bearer_auth:
            if self._credential is not None:
                headers["authorization"] = f"Bearer {self._credential.current()}"
        else:
            if self.config.api_key and self.config.api_key.get():
                headers["x-api-key"] = self.config.api_key.get()
            headers["anthropic-version"] = self.config.anthropic_version
        beta = allowed_betas(request.source_features, self.config.anthropic_beta) if request.passthrough else None
        if beta:
            headers["anthropic-beta"] = beta
        return headers

    def count_tokens_call(self, request: ApiRequest, upstream_model: str) -> UpstreamCall:
        """The API's own token count of a client's Messages request (`request.source_raw`)."""
        raw = rewrite_model(request.source_raw, upstream_model, None)
        if self.variant.model_in_body:
            path = "/v1/messages/count_tokens"
        else:  # Vertex counts at a model of its own, with the model and the version in the body
            path = self.variant.path.format(project=self.config.project, location=self.config.location,
                                            model="count-tokens", method="rawPredict")
            raw = b'{"anthropic_version":' + dumps(self.variant.version_in_body) + b"," + raw.lstrip()[1:]
        return UpstreamCall(url=self.config.base_url.rstrip("/") + path, headers=self._headers(request), body=raw)

    def count_of(self, body: bytes) -> int:
        try:
            return checked_count(orjson.loads(body).get("input_tokens"), "Anthropic")
        except (orjson.JSONDecodeError, AttributeError):
            raise malformed_answer("Anthropic") from None

    def from_upstream(self, request: ApiRequest, body: bytes) -> tuple[bytes, Usage]:
        if request.passthrough:
            return body, answer_usage(body)
        try:
            response, usage = from_anthropic_response(request, body)
        except SHAPE_ERRORS:
            raise malformed_answer("Anthropic") from None
        return dumps(response), usage

    def stream_translator(self, request: ApiRequest) -> AnthropicStreamTranslator | PassthroughStream:
        if request.passthrough:
            return PassthroughStream(StreamState(request.public_model, include_usage=False))
        state = StreamState(request.public_model, request.include_usage)
        return AnthropicStreamTranslator(state, structured_tool_name(request.body), request.carried)

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return parse_anthropic_error(status, headers, body)

    async def refresh_credentials(self) -> None:
        """Fetch a fresh Vertex token now (token_command) or re-read the token file."""
        if self._credential is not None:
            await self._credential.refresh()


ADAPTERS = {
    "anthropic": lambda config: AnthropicAdapter(config, ANTHROPIC),
    "anthropic-vertex": lambda config: AnthropicAdapter(config, ANTHROPIC_VERTEX),
}


# --- request -------------------------------------------------------------------


def to_anthropic_request(request: ApiRequest, upstream_model: str, variant: AnthropicVariant = ANTHROPIC) -> JSON:
    body = request.body
    rules = claude_rules(upstream_model)
    _reject_untranslatable(body)
    check_breakpoints(body)
    system, messages = _to_anthropic_messages(body.get("messages") or [], request, variant.inlines_image_urls)
    if rules.no_prefill and messages and messages[-1]["role"] == "assistant":
        raise invalid_param("messages", "this Claude model does not take a last assistant message (prefill)")
    thinking = thinking_for(body, rules)
    if thinking is not None and thinking.manual and continues_tool_use_without_thinking(messages):
        thinking = None  # the turn's thinking blocks are gone: Claude takes the tool turn only with thinking off
    max_tokens = _max_tokens(body, request.max_output_length)
    if thinking is not None:
        thinking, max_tokens = fit_budget(thinking, max_tokens, request.max_output_length)
    out: JSON = {}
    if variant.model_in_body:
        out["model"] = upstream_model
    if variant.version_in_body:
        out["anthropic_version"] = variant.version_in_body
    out["max_tokens"] = max_tokens
    out["messages"] = messages
    sampling = _sampling(body)
    check_sampling(sampling, rules, thinking)
    out.update(sampling)
    native = rules.structured_outputs_vertex if variant.bearer_auth else rules.structured_outputs
    structured = structured_for(body, native)
    fields, ask = _tool_fields(body, messages, structured, thinking, native)
    out.update(fields)
    if ask:
        system.append({"type": "text", "text": ask})
    if system:
        out["system"] = system
    out.update(_reasoning_fields(thinking, structured))
    if body.get("stream"):
        out["stream"] = True
    return out


def _reasoning_fields(thinking: Thinking | None, structured: Structured) -> JSON:
    out: JSON = {}
    output_config: JSON = {}
    if thinking is not None:
        out["thinking"] = thinking.config
        if thinking.effort:
            output_config["effort"] = thinking.effort
    if structured.output_format is not None:
        output_config["format"] = structured.output_format
    if output_config:
        out["output_config"] = output_config
    return out


def _tool_fields(body: Mapping[str, Any], messages: list[JSON], structured: Structured,
                 thinking: Thinking | None, strict_tools: bool) -> tuple[JSON, str | None]:
    """(`tools` and `tool_choice`, a line for the system prompt): the client's tools, the
    answer tool of `response_format`, or the tools the history called when none are offered."""
    tools = _tools(body.get("tools"), strict_tools)
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")) if tools else None
    if structured.tool is not None:
        return answer_tool_fields(structured, tools, choice, thinking)
    if tools:
        if thinking is not None and thinking.manual and choice and choice["type"] in ("any", "tool"):
            raise invalid_param("tool_choice", "with reasoning_effort, this Claude model takes tool_choice "
                                               "auto or none only")
        return ({"tools": tools, "tool_choice": choice} if choice else {"tools": tools}), None
    if body.get("tool_choice") not in (None, "none", "auto"):
        raise invalid_param("tool_choice", "tool_choice needs tools")
    called = _tools_called_in(messages)
    if called:
        # The API refuses tool_use/tool_result blocks in a request that defines no tools
        # (OpenAI accepts them, and clients often leave tools out of the follow-up call):
        # declare the tools the history called, and let none be called, as none was offered.
        return {"tools": called, "tool_choice": {"type": "none"}}, None
    return {}, None


def _tools_called_in(messages: list[JSON]) -> list[JSON]:
    names = dict.fromkeys(
        block["name"] for turn in messages for block in turn["content"] if block["type"] == "tool_use"
    )
    return [{"name": name, "input_schema": {"type": "object"}} for name in names]


def _reject_untranslatable(body: Mapping[str, Any]) -> None:
    for name, value in body.items():
        if name in TRANSLATED or value is None:  # null is "not set" in OpenAI's API
            continue
        if name in HARMLESS:
            allowed = HARMLESS[name]
            if allowed is None or value in allowed:
                continue
            raise invalid_param(name,
                                f"{name}={orjson.dumps(value).decode()[:80]} is not supported by Anthropic models")
        raise invalid_param(name, f"{name} is not supported by Anthropic models")


def _max_tokens(body: Mapping[str, Any], max_output_length: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid_param(name, f"{name} must be a positive integer")
        return value
    return max_output_length or DEFAULT_MAX_TOKENS


def _sampling(body: Mapping[str, Any]) -> JSON:
    out: JSON = {}
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            raise invalid_param("temperature", "temperature must be between 0 and 1 for Anthropic models")
        out["temperature"] = temperature
    for name in ("top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise invalid_param("stop", "stop must be a string or a list of strings")
    if any(not s.strip() for s in stops or ()):
        # The API refuses them ("each stop sequence must contain non-whitespace"); dropping one
        # would let the answer run past where the client asked it to stop.
        raise invalid_param("stop", "Anthropic models refuse stop sequences that are empty or only whitespace "
                                    "(such as \"\\n\"); leave them out (or name stop in the model's drop_params)")
    if stops:
        out["stop_sequences"] = stops
    user = body.get("user") or body.get("safety_identifier")
    if user is not None:
        out["metadata"] = {"user_id": str(user)}
    return out


def _tools(tools: Any, strict_tools: bool) -> list[JSON]:
    if not tools:
        return []
    out: list[JSON] = []
    if not isinstance(tools, list):
        raise invalid_param("tools", "tools must be a list")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
            raise invalid_param(f"tools[{i}]", "only function tools with a name are supported by Anthropic models")
        spec: JSON = {"name": function["name"]}
        if function.get("description"):
            spec["description"] = function["description"]
        spec["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        mark = cache_mark(tool, f"tools[{i}]") or cache_mark(function, f"tools[{i}].function")
        if mark is not None:
            spec["cache_control"] = mark
        if strict_tools and function.get("strict") is True:
            spec["strict"] = True  # grammar-enforced input, as OpenAI's strict
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel_tool_calls: Any) -> JSON | None:
    if choice is None or choice == "auto":
        out: JSON = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and (choice.get("function") or {}).get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise invalid_param("tool_choice", "tool_choice must be auto, none, required or a named function")
    if parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # the API's own default is auto with parallel calls
    return out


def _to_anthropic_messages(
    messages: list[Any], request: ApiRequest, inline_urls: bool
) -> tuple[list[JSON], list[JSON]]:
    """(system blocks, messages): system/developer lifted out, the rest merged by role."""
    system: list[JSON] = []
    turns: list[JSON] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        mark = cache_mark(message, f"messages[{i}]")  # a whole message's mark: on its last block
        if role in ("system", "developer"):
            system.extend(mark_last(text_blocks(message.get("content"), f"messages[{i}].content"), mark))
            continue
        if role == "user":
            turn_role, blocks = "user", user_blocks(message.get("content"), request, inline_urls, i)
        elif role == "assistant":
            key = turn_key(message)
            state = request.carried.given.get(key) if key else None
            turn_role, blocks = "assistant", with_thinking(_assistant_blocks(message, i), state)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result_block(message, i)]
        else:
            raise invalid_param(f"messages[{i}].role",
                                f"messages[{i}].role {role!r} is not supported by Anthropic models")
        mark_last(blocks, mark)
        if not blocks:
            continue  # an empty turn says nothing, and the API refuses empty content
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": turn_role, "content": blocks})
    return system, turns


def _assistant_blocks(message: Mapping[str, Any], i: int) -> list[JSON]:
    if message.get("function_call"):
        raise invalid_param(f"messages[{i}].function_call", "function_call (legacy) is not supported; use tool_calls")
    blocks = text_blocks(message.get("content"), f"messages[{i}].content")
    for j, call in enumerate(message.get("tool_calls") or []):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not call.get("id") or not function.get("name"):
            raise invalid_param(param, "a tool call needs an id and a function name")
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            raise invalid_param(f"{param}.function.arguments", "tool call arguments are not valid JSON") from exc
        if not isinstance(parsed, dict):
            raise invalid_param(f"{param}.function.arguments", "tool call arguments must be a JSON object")
        blocks.append({"type": "tool_use", "id": _tool_use_id(call["id"]), "name": function["name"], "input": parsed})
    return blocks


def _tool_use_id(call_id: Any) -> str:
    """The API takes ids of letters, digits, `_` and `-` only; ids minted elsewhere (say,
    `functions.get_weather:0`) are mapped the same way in a call and in its result."""
    return _TOOL_ID_CHARS.sub("_", str(call_id))


def _tool_result_block(message: Mapping[str, Any], i: int) -> JSON:
    tool_call_id = message.get("tool_call_id")
    if not tool_call_id:
        raise invalid_param(f"messages[{i}].tool_call_id", "a tool message needs tool_call_id")
    texts = texts_of(message.get("content"), f"messages[{i}].content")
    block: JSON = {"type": "tool_result", "tool_use_id": _tool_use_id(tool_call_id)}
    if texts:  # an empty result is no content at all (the API refuses empty text)
        block["content"] = "\n".join(texts)
    content = message.get("content")
    for j, part in enumerate(content if isinstance(content, list) else []):
        mark = cache_mark(part, f"messages[{i}].content[{j}]")  # the result is one block: it takes the mark
        if mark is not None:
            block["cache_control"] = mark
    return block
