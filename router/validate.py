"""Edge validation of OpenAI requests: the shape the router relies on, checked once.

Fields the gateway does not know are left alone (carried to the upstream); the
fields it reads are checked for type and range, and every refusal names the
parameter the way OpenAI does (`messages[2].role`).
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.base import JSON, Operation
from router.config import RequestLimits
from router.errors import GatewayError
from router.ssrf import check_image_url

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


def bad(param: str, message: str, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a decimal", list: "an array",
            dict: "an object", type(None): "null"}.get(type(value), "something else")


def parse_body(raw: bytes, limits: RequestLimits) -> JSON:
    if not raw:
        raise bad("body", "The request body is empty; a JSON object is expected.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad("body", f"We could not parse the JSON body of your request: {exc.msg}.") from None
    if not isinstance(body, dict):
        raise bad("body", f"The request body must be a JSON object, not {_type_name(body)}.")
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


def _number(body: JSON, name: str, low: float | None = None, high: float | None = None,
            integer: bool = False) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        expected = "an integer" if integer else "a decimal"
        raise bad(name, f"Invalid type for '{name}': expected {expected}, but got {_type_name(value)} instead.")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise bad(name, f"Invalid value for '{name}': {value} is not {bounds}.", "invalid_value")


def _boolean(body: JSON, name: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad(name, f"Invalid type for '{name}': expected a boolean, but got {_type_name(value)} instead.")


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
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise bad("stream_options", "Invalid type for 'stream_options': expected an object.")
    if not stream:
        raise bad("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise bad("stream_options.include_usage", "Invalid type for 'stream_options.include_usage': "
                                                  "expected a boolean.")
    return stream, include


def _sampling(body: JSON) -> None:
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "n", 1, 128, integer=True)
    _number(body, "max_tokens", 1, None, integer=True)
    _number(body, "max_completion_tokens", 1, None, integer=True)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _number(body, "seed", None, None, integer=True)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad("stop", "Invalid type for 'stop': expected a string or an array of strings.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("user", f"Invalid type for 'user': expected a string, but got {_type_name(user)} instead.")


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
    image_urls: list[str] = []
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]", limits, image_urls)
    _tools(body, limits)
    return image_urls


def _message(message: Any, path: str, limits: RequestLimits, image_urls: list[str]) -> None:
    if not isinstance(message, dict):
        raise bad(path, f"Invalid type for '{path}': expected an object, but got {_type_name(message)} instead.")
    role = message.get("role")
    if role not in _ROLES:
        raise bad(f"{path}.role", f"Invalid value for '{path}.role': {role!r} is not one of "
                                  f"{', '.join(sorted(_ROLES))}.", "invalid_value")
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        if role != "assistant":
            raise bad(f"{path}.content", f"Missing required parameter: '{path}.content'.")
        raise bad(f"{path}.content", f"'{path}.content' is required unless tool_calls are given.")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise bad(f"{path}.tool_call_id", f"Missing required parameter: '{path}.tool_call_id'.")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad(f"{path}.content", f"Invalid type for '{path}.content': expected a string or an array of "
                                     f"content parts, but got {_type_name(content)} instead.")
    if len(content) > limits.max_content_parts:
        raise bad(f"{path}.content", f"Too many content parts: {len(content)} is over the limit of "
                                     f"{limits.max_content_parts} (max_content_parts).")
    for j, part in enumerate(content):
        ppath = f"{path}.content[{j}]"
        if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
            raise bad(f"{ppath}.type", f"Invalid content part at '{ppath}': expected an object whose type is one "
                                       f"of {', '.join(sorted(_PART_TYPES))}.")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise bad(f"{ppath}.text", f"Missing required parameter: '{ppath}.text'.")
        if part["type"] == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                raise bad(f"{ppath}.image_url.url", f"Missing required parameter: '{ppath}.image_url.url'.")
            if check_image_url(url, f"{ppath}.image_url.url", limits.max_image_bytes):
                image_urls.append(url)


def _tools(body: JSON, limits: RequestLimits) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise bad("tools", "Invalid type for 'tools': expected an array.")
    if len(tools) > limits.max_tools:
        raise bad("tools", f"Too many tools: {len(tools)} is over the limit of {limits.max_tools} (max_tools).")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad(f"tools[{i}].function.name", f"Missing required parameter: 'tools[{i}].function.name'.")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise bad(f"tools[{i}].function.parameters", "Invalid type for "
                      f"'tools[{i}].function.parameters': expected a JSON schema object.")


def completions(body: JSON) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad("prompt", "Missing required parameter: 'prompt'.")
    if not _is_text_or_tokens(prompt):
        raise bad("prompt", "Invalid type for 'prompt': expected a string, an array of strings, an array of "
                            "integers or an array of integer arrays.")
    _sampling(body)
    _number(body, "logprobs", 0, 5, integer=True)
    _boolean(body, "echo")


def embeddings(body: JSON) -> None:
    data = body.get("input")
    if data is None:
        raise bad("input", "Missing required parameter: 'input'.")
    if not _is_text_or_tokens(data) or data == "" or data == []:
        raise bad("input", "Invalid 'input': expected a non-empty string, array of strings, array of integers "
                           "or array of integer arrays.")
    if isinstance(data, list) and len(data) > 2048:
        raise bad("input", "Invalid 'input': at most 2048 inputs per request.")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad("encoding_format", "Invalid value for 'encoding_format': expected 'float' or 'base64'.",
                  "invalid_value")
    _number(body, "dimensions", 1, None, integer=True)


def _is_text_or_tokens(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    if isinstance(first, str):
        return all(isinstance(v, str) for v in value)
    if isinstance(first, int) and not isinstance(first, bool):
        return all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if isinstance(first, list):
        return all(isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
                   for v in value)
    return False


VALIDATORS = {Operation.COMPLETIONS: completions, Operation.EMBEDDINGS: embeddings}
