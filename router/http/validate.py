"""Edge validation of OpenAI requests: the shape the router relies on, checked once.

Every field the OpenAPI document (router/http/openapi.json) describes is checked for type
and range here, so that a request the document calls invalid is a 400 naming the
parameter the way OpenAI does (`messages[2].role`), never a 500 further in. Fields
the gateway does not know are left alone (carried to the upstream). `null` counts as
absent. A whole decimal where an integer is expected (`max_tokens: 5.0`) is an
integer, as JSON Schema says; it is rewritten as one before the upstream sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from providers.base import JSON, Operation
from router.config.schema import RequestLimits
from router.errors import GatewayError
from router.upstream.ssrf import check_image_url

INT64 = (-(2**63), 2**63 - 1)
UINT64_MAX = 2**64 - 1
MAX_STOP_SEQUENCES = 4  # OpenAI's own limit
MAX_EMBEDDING_INPUTS = 2048  # OpenAI's own limit
# https image URLs per request: each may be fetched (Gemini), so this bounds what one request makes the gateway
# download (x max_image_bytes); Gemini takes at most 20 MB of inline data per request anyway.
MAX_IMAGE_URLS = 16
MAX_EMBEDDING_DIMENSIONS = 65536  # far above any model's (OpenAI's largest: 3072); bounds what upstreams allocate
# Output tokens one request may ask for, whatever the model: the largest context window on offer (10M tokens).
# Models with a `max_output_length` are held to it (output_limit); this bounds the rest, and so the TPM reservation.
MAX_OUTPUT_TOKENS = 10_000_000
MAX_TOKEN_ID = 2**31 - 1  # vocabularies are far smaller; upstreams keep token ids in 32-bit integers
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # tool, function and json_schema names
# Transcription form fields are forwarded to the upstream: only plain names (`timestamp_granularities[]`).
FORM_FIELD_NAME = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,64}$")
_TEXT_PARTS = frozenset({"text"})
_PARTS_BY_ROLE: Mapping[str, frozenset[str]] = {
    "system": _TEXT_PARTS, "developer": _TEXT_PARTS, "tool": _TEXT_PARTS,
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
}
_ROLES = frozenset({*_PARTS_BY_ROLE, "function"})
_TOOL_CHOICES = ("none", "auto", "required")
_TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")  # ISO-639-1 (`de`), optionally a region


def bad(param: str, message: str, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), "something else")


def _wrong_type(param: str, expected: str, value: Any) -> GatewayError:
    return bad(param, f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.")


def parse_body(raw: bytes, limits: RequestLimits) -> JSON:
    if not raw:
        raise bad("body", "The request body is empty; a JSON object is expected.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad("body", f"We could not parse the JSON body of your request: {exc.msg}.") from None
    if not isinstance(body, dict):
        raise bad("body", f"The request body must be a JSON object, not {_type_name(body)}.")
    # Nesting needs an opening bracket a level: fewer brackets than the limit, no walk needed.
    if raw.count(b"[") + raw.count(b"{") > limits.max_json_depth:
        _check_depth(body, limits.max_json_depth)
    return body


def _check_depth(root: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise bad("body", f"The JSON body is nested deeper than the limit of {limit} levels (max_json_depth).")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


# --- scalars: `holder[name]` checked in place, param named `prefix + name` ----------------------------


def _number(holder: JSON, name: str, low: float | None = None, high: float | None = None,
            integer: bool = False, prefix: str = "") -> None:
    value = holder.get(name)
    if value is None:
        return
    param = prefix + name
    if integer and isinstance(value, float) and value.is_integer() and abs(value) <= UINT64_MAX:
        value = holder[name] = int(value)  # 5.0 is the integer 5 (JSON Schema); upstreams get 5
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise _wrong_type(param, "an integer" if integer else "a number", value)
    if value != value or value in (float("inf"), float("-inf")):
        raise bad(param, f"Invalid value for '{param}': expected a finite number.", "invalid_value")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad(param, f"Invalid value for '{param}': {value} is not {bounds}.", "invalid_value")


def _boolean(holder: JSON, name: str, prefix: str = "") -> None:
    value = holder.get(name)
    if value is not None and not isinstance(value, bool):
        raise _wrong_type(prefix + name, "a boolean", value)


def _string(holder: JSON, name: str, prefix: str = "", required: bool = False) -> None:
    value = holder.get(name)
    if value is None and required:
        raise bad(prefix + name, f"Missing required parameter: '{prefix}{name}'.")
    if value is not None and not isinstance(value, str):
        raise _wrong_type(prefix + name, "a string", value)


def _object(holder: JSON, name: str, prefix: str = "") -> JSON | None:
    value = holder.get(name)
    if value is not None and not isinstance(value, dict):
        raise _wrong_type(prefix + name, "an object", value)
    return value


def _name(holder: JSON, name: str, prefix: str) -> None:
    _string(holder, name, prefix, required=True)
    if not _NAME.match(holder[name]):
        raise bad(prefix + name, f"Invalid '{prefix}{name}': expected a name of 1 to 64 letters, digits, '_' "
                                 "or '-'.", "invalid_value")


def model_id(body: JSON, limits: RequestLimits) -> str:
    model = body.get("model")
    if model is None:
        raise bad("model", "You must provide a model parameter.")
    if not isinstance(model, str) or not model:
        raise bad("model", f"Invalid type for 'model': expected a string, but got {_type_name(model)} instead.")
    if len(model) > limits.max_model_id_length:
        raise bad("model", f"The model id is longer than the limit of {limits.max_model_id_length} characters "
                           "(max_model_id_length).")
    return model


def stream_flags(body: JSON) -> tuple[bool, bool]:
    _boolean(body, "stream")
    stream = bool(body.get("stream"))
    options = _object(body, "stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise bad("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    _boolean(options, "include_usage", "stream_options.")
    _boolean(options, "include_obfuscation", "stream_options.")
    return stream, bool(options.get("include_usage"))


def _sampling(body: JSON) -> None:
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "n", 1, 128, integer=True)
    _number(body, "max_tokens", 1, MAX_OUTPUT_TOKENS, integer=True)
    _number(body, "max_completion_tokens", 1, MAX_OUTPUT_TOKENS, integer=True)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "seed", *INT64, integer=True)
    _string(body, "user")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and 0 < len(stop) <= MAX_STOP_SEQUENCES and all(isinstance(s, str) for s in stop)):
        raise bad("stop", f"Invalid 'stop': expected a string or an array of 1 to {MAX_STOP_SEQUENCES} strings.")
    bias = _object(body, "logit_bias") or {}
    for token in bias:
        if not token.isascii() or not token.isdigit() or len(token) > 9:  # ids below 10^9, as the document says
            raise bad("logit_bias", f"Invalid 'logit_bias': the key '{token[:32]}' is not a token id.")
        if bias[token] is None:
            raise _wrong_type(f"logit_bias.{token}", "an integer", None)
        _number(bias, token, -100, 100, integer=True, prefix="logit_bias.")


def output_limit(body: JSON, max_output_length: int) -> None:
    """More output than the model gives is a 400 naming the parameter, as OpenAI answers it,
    not quietly less: a client that asked for 100k tokens learns why it got 16k."""
    if max_output_length <= 0:
        return
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and value > max_output_length:
            raise bad(name, f"{name} is too large: {value}. This model supports at most {max_output_length} "
                            f"completion tokens, whereas you provided {value}.", "invalid_value")


# --- chat ---------------------------------------------------------------------------------------------


def chat(body: JSON, limits: RequestLimits) -> list[str]:
    """Check a chat request; return the https image URLs it refers to."""
    messages = body.get("messages")
    if messages is None:
        raise bad("messages", "Missing required parameter: 'messages'.")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "Invalid 'messages': expected a non-empty array of messages.")
    if len(messages) > limits.max_messages:
        raise bad("messages", f"Too many messages: {len(messages)} is over the limit of {limits.max_messages} "
                              "(max_messages).")
    _sampling(body)
    _boolean(body, "logprobs")
    _number(body, "top_logprobs", 0, 20, integer=True)
    _boolean(body, "parallel_tool_calls")
    image_urls: list[str] = []
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]", limits, image_urls)
    if len(image_urls) > MAX_IMAGE_URLS:
        raise bad("messages", f"Too many image URLs: {len(image_urls)} is over the limit of {MAX_IMAGE_URLS} per "
                              "request; send more images as data: URIs.")
    _tools(body, limits)
    _tool_choice(body.get("tool_choice"))
    _response_format(body.get("response_format"))
    return image_urls


def _message(message: Any, path: str, limits: RequestLimits, image_urls: list[str]) -> None:
    if not isinstance(message, dict):
        raise _wrong_type(path, "an object", message)
    role = message.get("role")
    if role not in _ROLES:
        raise bad(f"{path}.role", f"Invalid value for '{path}.role': {str(role)[:40]!r} is not one of "
                                  f"{', '.join(sorted(_ROLES))}.", "invalid_value")
    prefix = f"{path}."
    _string(message, "name", prefix, required=role == "function")
    content = message.get("content")
    if role == "function":
        _string(message, "content", prefix)
        return
    if role == "tool":
        _string(message, "tool_call_id", prefix, required=True)
    if role == "assistant":
        _string(message, "refusal", prefix)
        calls = _tool_calls(message.get("tool_calls"), f"{path}.tool_calls")
        if content is None and (calls or isinstance(message.get("function_call"), dict)):
            return
    if content is None:
        if role == "assistant":
            raise bad(f"{path}.content", f"'{path}.content' is required unless tool_calls are given.")
        raise bad(f"{path}.content", f"Missing required parameter: '{path}.content'.")
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        raise bad(f"{path}.content", f"Invalid type for '{path}.content': expected a string or a non-empty array "
                                     f"of content parts, but got {_type_name(content)} instead.")
    if len(content) > limits.max_content_parts:
        raise bad(f"{path}.content", f"Too many content parts: {len(content)} is over the limit of "
                                     f"{limits.max_content_parts} (max_content_parts).")
    for j, part in enumerate(content):
        _part(part, f"{path}.content[{j}]", _PARTS_BY_ROLE[role], limits, image_urls)


def _part(part: Any, path: str, allowed: frozenset[str], limits: RequestLimits, image_urls: list[str]) -> None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in allowed:
        raise bad(f"{path}.type", f"Invalid content part at '{path}': expected an object whose type is one of "
                                  f"{', '.join(sorted(allowed))}.")
    prefix = f"{path}."
    if kind in ("text", "refusal"):
        _string(part, kind, prefix, required=True)
    elif kind == "image_url":
        image = _object(part, "image_url", prefix) or {}
        _string(image, "url", f"{path}.image_url.", required=True)
        detail = image.get("detail")
        if detail is not None and detail not in ("auto", "low", "high"):
            raise bad(f"{path}.image_url.detail", f"Invalid value for '{path}.image_url.detail': expected "
                                                  "'auto', 'low' or 'high'.", "invalid_value")
        if check_image_url(image["url"], f"{path}.image_url.url", limits.max_image_bytes):
            image_urls.append(image["url"])
    elif kind == "input_audio":
        audio = _object(part, "input_audio", prefix) or {}
        _string(audio, "data", f"{path}.input_audio.", required=True)
        _string(audio, "format", f"{path}.input_audio.", required=True)
    elif _object(part, "file", prefix) is None:
        raise bad(f"{path}.file", f"Missing required parameter: '{path}.file'.")


def _tool_calls(calls: Any, path: str) -> bool:
    """Check an assistant's tool calls; True when there is at least one."""
    if calls is None:
        return False
    if not isinstance(calls, list):
        raise _wrong_type(path, "an array", calls)
    for i, call in enumerate(calls):
        function = _function_of(call, f"{path}[{i}]")
        _string(call, "id", f"{path}[{i}].", required=True)
        _string(function, "name", f"{path}[{i}].function.", required=True)
        _string(function, "arguments", f"{path}[{i}].function.", required=True)
    return bool(calls)


def _function_of(entry: Any, path: str) -> JSON:
    """The `function` of a `{"type": "function", "function": {...}}` entry (a tool, a tool call)."""
    if not isinstance(entry, dict):
        raise _wrong_type(path, "an object", entry)
    if entry.get("type") != "function":
        raise bad(f"{path}.type", f"Invalid value for '{path}.type': expected 'function'.", "invalid_value")
    function = _object(entry, "function", f"{path}.")
    if function is None:
        raise bad(f"{path}.function", f"Missing required parameter: '{path}.function'.")
    return function


def _tools(body: JSON, limits: RequestLimits) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _wrong_type("tools", "an array", tools)
    if len(tools) > limits.max_tools:
        raise bad("tools", f"Too many tools: {len(tools)} is over the limit of {limits.max_tools} (max_tools).")
    for i, tool in enumerate(tools):
        function = _function_of(tool, f"tools[{i}]")
        prefix = f"tools[{i}].function."
        _name(function, "name", prefix)
        _string(function, "description", prefix)
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise bad(prefix + "parameters", f"Invalid type for '{prefix}parameters': expected a JSON schema "
                                             "object.")
        _boolean(function, "strict", prefix)


def _tool_choice(choice: Any) -> None:
    if choice is None or choice in _TOOL_CHOICES:
        return
    if not isinstance(choice, dict) or choice.get("type") != "function" or not isinstance(
            choice.get("function"), dict):
        raise bad("tool_choice", "Invalid 'tool_choice': expected 'none', 'auto', 'required' or "
                                 "{\"type\": \"function\", \"function\": {\"name\": ...}}.", "invalid_value")
    _name(choice["function"], "name", "tool_choice.function.")


def _response_format(fmt: Any) -> None:
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise bad("response_format.type", "Invalid 'response_format': expected an object whose type is 'text', "
                                          "'json_object' or 'json_schema'.", "invalid_value")
    if kind != "json_schema":
        return
    schema = _object(fmt, "json_schema", "response_format.")
    if schema is None:
        raise bad("response_format.json_schema", "Missing required parameter: 'response_format.json_schema'.")
    prefix = "response_format.json_schema."
    _name(schema, "name", prefix)
    _string(schema, "description", prefix)
    if "schema" in schema and not isinstance(schema["schema"], dict):
        raise _wrong_type(prefix + "schema", "an object", schema["schema"])
    _boolean(schema, "strict", prefix)


# --- completions, embeddings, transcriptions ----------------------------------------------------------


def completions(body: JSON) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad("prompt", "Missing required parameter: 'prompt'.")
    body["prompt"] = _text_or_tokens(prompt)
    if body["prompt"] is None:
        raise bad("prompt", "Invalid type for 'prompt': expected a string, an array of strings, an array of "
                            "token ids or an array of token id arrays.")
    _sampling(body)
    _number(body, "logprobs", 0, 5, integer=True)
    _number(body, "best_of", 1, 20, integer=True)
    _boolean(body, "echo")
    _string(body, "suffix")


def embeddings(body: JSON) -> None:
    data = body.get("input")
    if data is None:
        raise bad("input", "Missing required parameter: 'input'.")
    data = body["input"] = _text_or_tokens(data)
    if data is None or data == "":
        raise bad("input", "Invalid 'input': expected a non-empty string, array of strings, array of token ids "
                           "or array of token id arrays.")
    if isinstance(data, list) and len(data) > MAX_EMBEDDING_INPUTS and not isinstance(data[0], int):
        raise bad("input", f"Invalid 'input': at most {MAX_EMBEDDING_INPUTS} inputs per request.")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad("encoding_format", "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                  "invalid_value")
    _number(body, "dimensions", 1, MAX_EMBEDDING_DIMENSIONS, integer=True)
    _string(body, "user")


def transcription(fields: JSON) -> None:
    """The form fields of a transcription (all strings as sent)."""
    fmt = fields.get("response_format")
    if fmt is not None and fmt not in _TRANSCRIPTION_FORMATS:
        raise bad("response_format", "Invalid value for 'response_format': expected one of "
                                     f"{', '.join(_TRANSCRIPTION_FORMATS)}.", "invalid_value")
    language = fields.get("language")
    if language is not None and not _LANGUAGE.match(language):
        raise bad("language", "Invalid value for 'language': expected an ISO-639-1 code such as 'de'.",
                  "invalid_value")
    temperature = fields.get("temperature")
    if temperature is not None:
        try:
            value = float(temperature)
        except ValueError:
            raise bad("temperature", "Invalid type for 'temperature': expected a number.") from None
        if not 0 <= value <= 1:
            raise bad("temperature", "Invalid value for 'temperature': expected a number between 0 and 1.",
                      "invalid_value")


def _token(value: Any) -> int | None:
    """A token id (a whole decimal counts, as for every integer), or None."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID:
        return value
    return None


def _text_or_tokens(value: Any) -> Any:
    """`value` as a prompt/input (token ids as integers), or None when it is not one."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return value
    if all(isinstance(v, list) and v for v in value):
        arrays = [[_token(t) for t in v] for v in value]
        return None if any(t is None for a in arrays for t in a) else arrays
    tokens = [_token(v) for v in value]
    return None if any(t is None for t in tokens) else tokens


VALIDATORS: Mapping[Operation, Callable[[JSON], None]] = {
    Operation.COMPLETIONS: completions, Operation.EMBEDDINGS: embeddings, Operation.TRANSCRIPTION: transcription,
}
