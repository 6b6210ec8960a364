"""The Anthropic simulator's checks of a request, strict the way the real API is: what it
refuses (a missing max_tokens, a `system` role inside messages, roles that do not
alternate, malformed tool or image blocks, a tool_result without its tool_use, tool blocks
in a request that defines no tools, a thinking block whose signature does not match)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from providers.simulators.anthropic_cache import cache_mark_error
from providers.simulators.anthropic_features import validate_extra_block

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


class Rejected(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    cache_error = cache_mark_error(body)
    if cache_error:
        raise Rejected(cache_error)


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
    elif not validate_extra_block(block, role, where):
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
