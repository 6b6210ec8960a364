"""A Responses API request as the canonical OpenAI chat request.

`input` items become chat messages (`function_call` items the assistant's `tool_calls`,
`function_call_output` items `tool` messages), `instructions` the system message, function
tools chat tools, `text.format` `response_format`, `reasoning.effort` `reasoning_effort`,
`max_output_tokens` `max_completion_tokens`. What chat cannot express is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from providers.base import JSON
from router.errors import GatewayError
from router.http.ingress.responses_output import new_id

BUILT_IN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26", "file_search",
    "code_interpreter", "computer_use_preview", "computer_use", "mcp", "image_generation", "local_shell", "shell",
    "apply_patch", "custom"})
# Fields passed to chat under the same name.
SAME_NAME = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "presence_penalty",
             "frequency_penalty", "stream")
# Accepted and answered by the gateway itself (echoed, stored), never sent on.
GATEWAY_FIELDS = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text", "reasoning",
                            "max_output_tokens", "metadata", "store", "previous_response_id", "include",
                            "truncation", "stream_options", "prompt_cache_key", "service_tier", "top_logprobs",
                            "background", "max_tool_calls", "prompt", "conversation", *SAME_NAME})
ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}


def bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, param=param)


def built_in_tool(body: JSON) -> tuple[str, str] | None:
    """(param, what) of the first built-in tool the request asks for, if any."""
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and tool.get("type") in BUILT_IN_TOOLS:
            return f"tools[{i}].type", f"The built-in tool '{tool['type']}'"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in BUILT_IN_TOOLS:
        return "tool_choice.type", f"The built-in tool '{choice['type']}'"
    return None


def input_items(body: JSON) -> list[JSON]:
    """The request's `input` as a list of items, each with an id (as `input_items` lists them)."""
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise bad("input", "Invalid type for 'input': expected a string or an array of input items.")
    items: list[JSON] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise bad(f"input[{i}]", f"Invalid type for 'input[{i}]': expected an object.")
        item = dict(item)
        if item.get("type", "message") == "message":
            item["type"] = "message"
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        item.setdefault("id", new_id({"message": "msg", "function_call": "fc", "reasoning": "rs"}.get(
            str(item["type"]), "item")))
        items.append(item)
    return items


def _part(part: Any, param: str) -> JSON:
    if not isinstance(part, dict):
        raise bad(param, f"Invalid type for '{param}': expected a content part object.")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(part.get("text", ""))}
    if kind == "refusal":
        return {"type": "text", "text": str(part.get("refusal", ""))}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise bad(param, f"'{param}': only images given by `image_url` (https or data URL) are supported; "
                             "the gateway has no Files API for `file_id`.")
        return {"type": "image_url", "image_url": {"url": url, "detail": part.get("detail") or "auto"}}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise bad(param, f"'{param}': only files given inline as `file_data` are supported; the gateway has "
                             "no Files API for `file_id` and does not fetch `file_url`.")
        return {"type": "file", "file": {"file_data": data, "filename": part.get("filename") or "file"}}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio") or {
            "data": part.get("data"), "format": part.get("format")}}
    raise bad(f"{param}.type", f"Unsupported content part type '{kind}' in '{param}'.")


def _content(content: Any, role: str, param: str) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad(param, f"Invalid type for '{param}': expected a string or an array of content parts.")
    parts = [_part(p, f"{param}[{j}]") for j, p in enumerate(content)]
    if role in ("assistant", "system") or all(p["type"] == "text" for p in parts):
        if role in ("assistant", "system") and any(p["type"] != "text" for p in parts):
            raise bad(param, f"'{param}': a {role} message takes only text parts.")
        return "".join(p["text"] for p in parts) if role == "assistant" else parts
    return parts


def _tool_output(output: Any, param: str) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return [_part(p, f"{param}[{j}]") for j, p in enumerate(output)]
    raise bad(param, f"Invalid type for '{param}': expected a string or an array of content parts.")


def messages_of(items: list[JSON]) -> list[JSON]:
    """Input items (the conversation so far and the new input) as chat messages."""
    messages: list[JSON] = []
    for i, item in enumerate(items):
        kind, param = item.get("type", "message"), f"input[{i}]"
        if kind == "message":
            role = ROLES.get(str(item.get("role")))
            if role is None:
                raise bad(f"{param}.role", f"Invalid role '{item.get('role')}' in '{param}'.")
            messages.append({"role": role, "content": _content(item.get("content"), role, f"{param}.content")})
        elif kind == "function_call":
            call = {"id": str(item.get("call_id") or ""), "type": "function",
                    "function": {"name": str(item.get("name") or ""), "arguments": str(item.get("arguments") or "")}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # the text and calls of one turn
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id") or ""),
                             "content": _tool_output(item.get("output"), f"{param}.output")})
        elif kind == "reasoning":
            continue  # upstream-specific state: chat has no place for it (the native path keeps it)
        else:
            raise bad(f"{param}.type", f"The input item type '{kind}' is only served by upstreams that serve the "
                                       "Responses API themselves.")
    return messages


def _tools(tools: Any) -> list[JSON]:
    if not isinstance(tools, list):
        raise bad("tools", "Invalid type for 'tools': expected an array.")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue  # built-in tools: refused or passed through by the dispatcher
        if not isinstance(tool.get("name"), str):
            raise bad(f"tools[{i}].name", f"Missing required parameter: 'tools[{i}].name'.")
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object",
                                                                                   "properties": {}}}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        raise bad("tool_choice.type", "tool_choice 'allowed_tools' is only served by upstreams that serve the "
                                      "Responses API themselves.")
    return None  # a built-in tool: refused or passed through by the dispatcher


def _response_format(text: Any) -> JSON | None:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise bad("text", "Invalid type for 'text': expected an object.")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return None
    if not isinstance(fmt, dict):
        raise bad("text.format", "Invalid type for 'text.format': expected an object.")
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise bad("text.format", "'text.format' of type json_schema needs a 'name' and a 'schema'.")
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": spec}
    raise bad("text.format.type", f"Unsupported text.format type '{fmt.get('type')}'.")


def _refuse_unservable(body: JSON) -> None:
    for name in body:
        if name not in GATEWAY_FIELDS:
            raise bad(name, f"Unrecognized request argument supplied: {name}")
    for name in ("prompt", "conversation"):
        if body.get(name) is not None:
            raise bad(name, f"'{name}' (stored prompts and conversations of OpenAI's platform) is not served by "
                            "this gateway.")
    if body.get("background"):
        raise bad("background", "Background responses are not served by this gateway.")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise bad("service_tier", "Only the 'auto' and 'default' service tiers are served on this model.")
    if body.get("truncation") not in (None, "disabled", "auto"):
        raise bad("truncation", "Invalid value for 'truncation': expected 'auto' or 'disabled'.")


def to_chat(body: JSON, history: list[JSON]) -> JSON:
    """The canonical chat request for a Responses request continuing `history`."""
    _refuse_unservable(body)
    messages = messages_of([*history, *input_items(body)])
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.insert(0, {"role": "system", "content": instructions})
    chat: JSON = {"model": body.get("model"), "messages": messages}
    chat.update({name: body[name] for name in SAME_NAME if body.get(name) is not None})
    if body.get("tools"):
        tools = _tools(body["tools"])
        if tools:
            chat["tools"] = tools
    if body.get("tool_choice") is not None and chat.get("tools"):
        choice = _tool_choice(body["tool_choice"])
        if choice is not None:
            chat["tool_choice"] = choice
    response_format = _response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    text = body.get("text")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    include = body.get("include")
    if isinstance(include, list) and "message.output_text.logprobs" in include:
        chat["logprobs"] = True
        if body.get("top_logprobs"):
            chat["top_logprobs"] = body["top_logprobs"]
    if chat.get("stream"):
        chat["stream_options"] = {"include_usage": True}  # the Response object always carries usage
    return chat
