"""The Anthropic Messages API (`POST /v1/messages`), for the `anthropic` SDK and Claude Code.

A Claude upstream (a provider whose kind speaks the Anthropic protocol) takes the client's
body as it came (providers/anthropic_passthrough.py); every other chat model gets the
canonical form made here, and its answer back as a Message (ingress/anthropic_answer.py).

What each Messages field becomes on a non-Anthropic upstream (the canonical OpenAI chat form):

| Messages                                 | canonical chat                                                 |
|------------------------------------------|----------------------------------------------------------------|
| `model`, `stream`, `temperature`, `top_p`, `top_k` | the same                                             |
| `max_tokens`                             | `max_completion_tokens`                                        |
| `system` (string or text blocks)         | one `system` message (the blocks as text parts)                |
| user `text` / `image` (base64, url)      | `text` / `image_url` parts (base64 as a `data:` URI)           |
| user `document`: base64 PDF              | a `file` part (`file_data` data URI; the upstream may refuse)  |
| user `document`: text or content source  | text parts                                                     |
| `tool_result` (string or blocks)         | a `tool` message (texts joined); `is_error: true` prefixes the |
|                                          | text with "Error: "; its images follow in a user message       |
| assistant `text` / `tool_use`            | `content` / `tool_calls` (input as JSON arguments)             |
| assistant `thinking`, `redacted_thinking`| left out (only a Claude upstream can read them back)           |
| `cache_control`, `citations`, `service_tier`, `cache_control` at the top | left out                    |
| `tools` (custom)                         | function tools (`input_schema` as `parameters`)                |
| `tool_choice` auto/any/tool/none         | auto/required/named function/none; `disable_parallel_tool_use` |
|                                          | -> `parallel_tool_calls: false`                                |
| `stop_sequences`                         | `stop`                                                         |
| `metadata.user_id`                       | `user`                                                         |
| `thinking` enabled (budget_tokens)       | `reasoning_effort`: < 4096 low, < 16384 medium, else high;     |
|                                          | adaptive: medium; disabled: left out                           |
| `output_config.effort`                   | `reasoning_effort`                                             |
| `output_config.format` / `output_format` | `response_format` json_schema                                  |

Refused there (400 `invalid_request_error` naming the field, and only when the chosen
upstream is not a Claude one): server tools (`tools[]` with a `type` such as
`web_search_20250305`), blocks only the API understands (`server_tool_use`,
`web_search_tool_result`, `search_result`, `container_upload`, `mcp_tool_use`..., a
`document` by URL or file id) and top-level fields with no equivalent (`container`,
`mcp_servers`, `context_management`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy

from providers.base import JSON, ApiRequest
from router.errors import ErrorShape, GatewayError
from router.http.ingress.anthropic_answer import AnthropicStream, anthropic_status, error_json, message_from_chat
from router.http.ingress.base import Source

PROTOCOL = "anthropic"
MAX_BETA_FEATURES = 32

_TRANSLATED = frozenset({"model", "max_tokens", "messages", "system", "stream", "temperature", "top_p", "top_k",
                         "stop_sequences", "tools", "tool_choice", "metadata", "thinking", "output_config",
                         "output_format", "service_tier", "cache_control"})
_USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
_ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})

class AnthropicErrors:
    """`{"type": "error", "error": {"type", "message"}}` with Anthropic's statuses."""

    __slots__ = ()

    def error_response(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                       code: str | None = None, headers: Mapping[str, str] | None = None) -> web.Response:
        status = anthropic_status(status)
        return web.Response(status=status, body=error_json(status, message), content_type="application/json",
                            headers=headers)


def bad(message: str) -> GatewayError:
    return GatewayError(400, message, param=None, code="invalid_request_error")


# --- Messages -> canonical chat ------------------------------------------------------


def to_chat(body: JSON) -> JSON:
    """The Messages request as the canonical chat request (see the table above)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens < 2**31:
        raise bad("max_tokens: Field required, an integer of at least 1")
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise bad("messages: at least one message is required")
    out: JSON = {"model": body["model"], "max_completion_tokens": max_tokens}
    system = _system(body.get("system"))
    out["messages"] = ([system] if system else []) + [m for i, t in enumerate(turns) for m in _turn(t, i)]
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        out["user"] = str(metadata["user_id"])
    out.update(_tools(body.get("tools"), body.get("tool_choice")))
    effort = _reasoning_effort(body.get("thinking"), body.get("output_config"))
    if effort:
        out["reasoning_effort"] = effort
    schema = _output_schema(body)
    if schema is not None:
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    if body.get("stream") is not None:
        if not isinstance(body["stream"], bool):
            raise bad("stream: Input should be a valid boolean")
        out["stream"] = body["stream"]
        if body["stream"]:
            out["stream_options"] = {"include_usage": True}  # message_delta's usage
    return out


def _texts_of(blocks: Any, where: str) -> list[str]:
    if isinstance(blocks, str):
        return [blocks] if blocks else []
    if not isinstance(blocks, list):
        raise bad(f"{where}: Input should be a valid string or list of blocks")
    texts: list[str] = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise bad(f"{where}.{j}: expected a text block")
        texts.append(block["text"])
    return texts


def _system(system: Any) -> JSON | None:
    if system is None:
        return None
    texts = _texts_of(system, "system")
    if not texts:
        return None
    return {"role": "system", "content": texts[0] if len(texts) == 1 else [{"type": "text", "text": t}
                                                                           for t in texts]}


def _turn(turn: Any, i: int) -> list[JSON]:
    role = turn.get("role") if isinstance(turn, dict) else None
    content = turn.get("content") if isinstance(turn, dict) else None
    if role not in ("user", "assistant"):
        raise bad(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise bad(f"messages.{i}.content: Input should be a valid string or list of blocks")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise bad(f"messages.{i}.content.{j}: expected a content block with a type")
    return _user_turn(content, i) if role == "user" else _assistant_turn(content, i)


def _user_turn(blocks: list[JSON], i: int) -> list[JSON]:
    results: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(blocks):
        where = f"messages.{i}.content.{j}"
        if block["type"] == "tool_result":
            message, images = _tool_result(block, where)
            results.append(message)
            parts.extend(images)
        else:
            parts.extend(_part(block, where))
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _part(block: JSON, where: str) -> list[JSON]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": str(block.get("text") or "")}]
    source = block.get("source")
    if not isinstance(source, dict):
        return []  # server-side blocks: refused for this upstream (native_only)
    if kind == "image":
        if source.get("type") == "base64":
            return [{"type": "image_url", "image_url": {
                "url": f"data:{source.get('media_type')};base64,{source.get('data')}"}}]
        if source.get("type") == "url":
            return [{"type": "image_url", "image_url": {"url": str(source.get("url"))}}]
        raise bad(f"{where}.source: Input tag does not match 'base64' or 'url'")
    if kind == "document":
        return _document(block, source)
    return []


def _document(block: JSON, source: JSON) -> list[JSON]:
    kind = source.get("type")
    if kind == "base64":
        filename = str(block.get("title") or "document.pdf")
        return [{"type": "file", "file": {"filename": filename, "file_data":
                                          f"data:{source.get('media_type')};base64,{source.get('data')}"}}]
    if kind == "text":
        return [{"type": "text", "text": str(source.get("data") or "")}]
    if kind == "content":
        return [{"type": "text", "text": t} for t in _texts_of(source.get("content"), "document.source")]
    return []  # by URL or file id: refused for this upstream (native_only)


def _tool_result(block: JSON, where: str) -> tuple[JSON, list[JSON]]:
    if not isinstance(block.get("tool_use_id"), str):
        raise bad(f"{where}.tool_use_id: Field required")
    inner = block.get("content", "")
    texts: list[str] = []
    images: list[JSON] = []
    if isinstance(inner, str):
        texts = [inner]
    elif isinstance(inner, list):
        for k, part in enumerate(inner):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise bad(f"{where}.content.{k}: expected a content block with a type")
            for converted in _part(part, f"{where}.content.{k}"):
                if converted["type"] == "text":
                    texts.append(converted["text"])
                else:
                    images.append(converted)
    text = "\n".join(t for t in texts if t)
    if block.get("is_error") is True:
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": text}, images


def _assistant_turn(blocks: list[JSON], i: int) -> list[JSON]:
    texts: list[str] = []
    calls: list[JSON] = []
    for j, block in enumerate(blocks):
        if block["type"] == "text":
            texts.append(str(block.get("text") or ""))
        elif block["type"] == "tool_use":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad(f"messages.{i}.content.{j}: tool_use blocks need an id and a name")
            calls.append({"id": block["id"], "type": "function", "function": {
                "name": block["name"], "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    if not texts and not calls:
        return []  # thinking only: nothing this upstream can read back
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _tools(tools: Any, choice: Any) -> JSON:
    out: JSON = {}
    if tools is not None:
        if not isinstance(tools, list):
            raise bad("tools: Input should be a valid list")
        functions = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise bad(f"tools.{i}.name: Field required")
            if tool.get("type") not in (None, "custom"):
                continue  # a server tool: refused for this upstream (native_only)
            function: JSON = {"name": tool["name"],
                              "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
            if tool.get("description"):
                function["description"] = tool["description"]
            functions.append({"type": "function", "function": function})
        if functions:
            out["tools"] = functions
    if choice is None:
        return out
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise bad("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
    if choice.get("disable_parallel_tool_use") is True and "tools" in out:
        out["parallel_tool_calls"] = False
    return out


def _reasoning_effort(thinking: Any, output_config: Any) -> str | None:
    if isinstance(output_config, dict) and output_config.get("effort") in ("low", "medium", "high"):
        return str(output_config["effort"])
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise bad("thinking.budget_tokens: Field required, an integer of at least 1")
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def _output_schema(body: JSON) -> Any:
    for holder in (body.get("output_config"), body):
        if not isinstance(holder, dict):
            continue
        fmt = holder.get("format") if holder is not body else holder.get("output_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            return fmt["schema"]
    return None


def native_only(body: JSON) -> tuple[str, str] | None:
    """The first part of the request only a Claude upstream can serve: (param, what)."""
    for name in body:
        if name not in _TRANSLATED:
            return name, f"'{name}'"
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and tool.get("type") not in (None, "custom"):
            return f"tools.{i}", f"The server tool '{str(tool.get('type'))[:64]}'"
    turns = body.get("messages")
    for i, turn in enumerate(turns if isinstance(turns, list) else []):
        content = turn.get("content") if isinstance(turn, dict) else None
        allowed = _ASSISTANT_BLOCKS if isinstance(turn, dict) and turn.get("role") == "assistant" else _USER_BLOCKS
        for j, block in enumerate(content if isinstance(content, list) else []):
            refused = _native_block(block, allowed)
            if refused:
                return f"messages.{i}.content.{j}", refused
    return None


def _native_block(block: Any, allowed: frozenset[str]) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if not isinstance(kind, str):
        return None  # not a block at all: to_chat refuses it
    if kind not in allowed:
        return f"A '{kind[:64]}' block"
    source = block.get("source")
    if kind == "document" and isinstance(source, dict) and source.get("type") not in ("base64", "text", "content"):
        return f"A document by '{str(source.get('type'))[:64]}'"
    return None


def beta_features(headers: CIMultiDictProxy[str]) -> tuple[str, ...]:
    """The `anthropic-beta` features asked for (one header, comma-separated, or several)."""
    names = [n.strip() for value in headers.getall("anthropic-beta", []) for n in value.split(",")]
    if len(names) > MAX_BETA_FEATURES:
        raise bad(f"anthropic-beta: at most {MAX_BETA_FEATURES} features")
    return tuple(n[:100] for n in names if n)


class AnthropicIngress:
    name = "anthropic-messages"
    protocol = PROTOCOL
    errors: ErrorShape = AnthropicErrors()

    def to_canonical(self, body: JSON) -> JSON:
        return to_chat(body)

    def source(self, body: JSON, raw: bytes, headers: CIMultiDictProxy[str]) -> Source:
        """The client's own request, for a Claude upstream (which takes `raw`, model changed)."""
        return Source(body, PROTOCOL, native_only(body), raw, beta_features(headers))

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        return body if request.passthrough else message_from_chat(body, request)

    def client_stream(self, request: ApiRequest) -> AnthropicStream:
        return AnthropicStream(request)


ANTHROPIC = AnthropicIngress()

