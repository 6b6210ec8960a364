"""Anthropic prompt caching from OpenAI-shaped requests.

Clients that know Claude (LiteLLM's convention, OpenRouter's, the Vercel AI SDK's) put a
`cache_control` object where Anthropic takes one: on a content part, on a whole message
(then it marks the message's last block), or on a tool. The Messages API takes
`cache_control` on tools, system text blocks and message content blocks (text, image,
document, tool_use, tool_result), `{"type": "ephemeral"}` with an optional `ttl` of "5m"
or "1h", and at most 4 of them a request: a fifth is its 400 "A maximum of 4 blocks
with cache_control may be provided" (docs.claude.com, "Prompt caching"). The gateway
answers that 400 itself, naming the fifth mark, before any upstream call: dropping marks
would silently change what is cached and billed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from providers.base import JSON, invalid_param

MAX_BREAKPOINTS = 4
_TTLS = ("5m", "1h")


def cache_mark(holder: Any, param: str) -> JSON | None:
    """The `cache_control` of a part, message or tool, checked; None where there is none."""
    if not isinstance(holder, Mapping):
        return None
    mark = holder.get("cache_control")
    if mark is None:
        return None
    where = f"{param}.cache_control"
    if not isinstance(mark, Mapping) or mark.get("type") != "ephemeral" or set(mark) - {"type", "ttl"}:
        raise invalid_param(where, "cache_control must be {\"type\": \"ephemeral\"} with an optional ttl")
    ttl = mark.get("ttl")
    if ttl is None:
        return {"type": "ephemeral"}
    if ttl not in _TTLS:
        raise invalid_param(where, "cache_control.ttl must be \"5m\" or \"1h\"")
    return {"type": "ephemeral", "ttl": ttl}


def mark_last(blocks: list[JSON], mark: JSON | None) -> list[JSON]:
    """A message-level mark goes on the message's last block, as Anthropic caches up to it."""
    if mark is not None and blocks:
        blocks[-1]["cache_control"] = mark
    return blocks


def check_breakpoints(body: Mapping[str, Any]) -> None:
    """At most 4 marks, counted in Anthropic's order (tools, system, messages): a 400
    naming the first mark past the fourth."""
    marks = list(_marks(body))
    if len(marks) > MAX_BREAKPOINTS:
        raise invalid_param(f"{marks[MAX_BREAKPOINTS]}.cache_control",
                            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                            f"Found {len(marks)}.")


def _marks(body: Mapping[str, Any]) -> Iterator[str]:
    tools = body.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if _marked(tool) or (isinstance(tool, Mapping) and _marked(tool.get("function"))):
            yield f"tools[{i}]"
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    system_first = sorted(range(len(messages)), key=lambda i: not _is_system(messages[i]))
    for i in system_first:
        message = messages[i]
        if _marked(message):
            yield f"messages[{i}]"
        content = message.get("content") if isinstance(message, Mapping) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if _marked(part):
                yield f"messages[{i}].content[{j}]"


def _marked(holder: Any) -> bool:
    return isinstance(holder, Mapping) and holder.get("cache_control") is not None


def _is_system(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") in ("system", "developer")
