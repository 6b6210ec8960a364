"""Prompt caching in the Anthropic simulator, as the API does it (docs.claude.com,
"Prompt caching"): `cache_control` (`{"type": "ephemeral"}`, optional `ttl` "5m" or
"1h") on tools, system text blocks and message content blocks; at most 4 a request
("A maximum of 4 blocks with cache_control may be provided. Found 5."); a prefix (tools,
system, messages, up to and including a marked block) shorter than the minimum cacheable
length (1024 tokens on Sonnet and Opus) is not cached, without error. The first request
with a prefix writes it (`cache_creation_input_tokens`), a later one with the same prefix
reads it (`cache_read_input_tokens`); neither is counted in `input_tokens`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from providers.simulators.common import count_tokens

JSON = dict[str, Any]
MAX_BREAKPOINTS = 4
MIN_CACHEABLE_TOKENS = 1024


@dataclass
class PromptCache:
    prefixes: set[str] = field(default_factory=set)

    def account(self, body: JSON, usage: JSON) -> None:
        """Move the cached part of `usage["input_tokens"]` to the cache counts."""
        breakpoints = [(digest, tokens) for digest, tokens in _breakpoints(body) if tokens >= MIN_CACHEABLE_TOKENS]
        if not breakpoints:
            return
        read = max((tokens for digest, tokens in breakpoints if digest in self.prefixes), default=0)
        written = max(tokens for _, tokens in breakpoints) - read
        self.prefixes.update(digest for digest, _ in breakpoints)
        usage["cache_read_input_tokens"] = read
        usage["cache_creation_input_tokens"] = written
        usage["input_tokens"] = max(0, usage["input_tokens"] - read - written)


def cache_mark_error(body: JSON) -> str | None:
    """What the API says of the request's marks; None when they are fine."""
    marks = 0
    for where, block in _blocks(body):
        mark = block.get("cache_control")
        if mark is None:
            continue
        marks += 1
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
            return f"{where}.cache_control.type: Input should be 'ephemeral'"
        if set(mark) - {"type", "ttl"}:
            return f"{where}.cache_control: Extra inputs are not permitted"
        if mark.get("ttl", "5m") not in ("5m", "1h"):
            return f"{where}.cache_control.ttl: Input should be '5m' or '1h'"
    if marks > MAX_BREAKPOINTS:
        return f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {marks}."
    return None


def _blocks(body: JSON) -> Iterator[tuple[str, JSON]]:
    """Every block that may carry a mark, in the API's order: tools, system, messages."""
    for i, tool in enumerate(body.get("tools") or []):
        yield f"tools.{i}", tool
    system = body.get("system")
    for i, block in enumerate(system if isinstance(system, list) else []):
        yield f"system.{i}", block
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else []):
            yield f"messages.{i}.content.{j}", block


def _breakpoints(body: JSON) -> Iterator[tuple[str, int]]:
    """(digest of the prefix up to a marked block, its tokens) for each mark."""
    prefix = hashlib.sha256()
    tokens = 0
    for _, block in _blocks(body):
        unmarked = {k: v for k, v in block.items() if k != "cache_control"}
        prefix.update(orjson.dumps(unmarked, option=orjson.OPT_SORT_KEYS))
        tokens += count_tokens(str(block.get("text") or block.get("content") or ""))
        if block.get("cache_control") is not None:
            yield prefix.copy().hexdigest(), tokens
