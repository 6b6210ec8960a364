"""Opaque provider state of assistant turns, kept between a client's requests.

OpenAI clients send an assistant turn back as content and tool_calls only, but Claude
needs its thinking blocks (with signatures) back and Gemini 3 its thought signatures and
function-call ids (see `providers.base.CarriedState`). The translator hands out what it
saw, keyed by `turn_key` (the turn's first tool-call id, which every client keeps, or a
hash of its text); this store keeps it for a while and gives it back when a request
carries that turn again.

Scope: every entry is keyed by the API key's name as well, so a tool-call id forged or
copied from another key finds nothing (`load` only ever looks in the caller's scope).
Bounds: an entry larger than MAX_ENTRY_BYTES is not kept; in-process, at most
MAX_ENTRIES entries and MAX_BYTES bytes (oldest out first), each for TTL_SECONDS; in
Redis (shared by every replica of a region), each entry expires after TTL_SECONDS.

When the state is gone (expired, evicted, kept by a replica in another region without
the same Redis, or never there because the id is foreign), the request goes on without
it and the translator does what the provider documents for that case (Claude: thinking
off for that request; Gemini 3: the dummy signature); nothing fails.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from providers.base import JSON, ApiRequest, turn_key

log = logging.getLogger("llm_router.turns")

TTL_SECONDS = 24 * 3600  # an agent may wait on a slow tool or a person between turns
MAX_ENTRY_BYTES = 1 << 20  # Claude's longest thinking (128k tokens) is well under this
MAX_ENTRIES = 10_000
MAX_BYTES = 256 << 20
MAX_TURNS_LOOKED_UP = 64  # the latest assistant turns of a request (older ones matter less)


class TurnStore(Protocol):
    async def load(self, scope: str, keys: Sequence[str]) -> dict[str, JSON]: ...

    async def save(self, scope: str, entries: Mapping[str, JSON]) -> None: ...


def _store_key(scope: str, key: str) -> str:
    """One name per (API key, turn); hashed so ids of any length or charset make a fixed key."""
    return hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()


class MemoryTurnStore:
    """In-process, bounded in entries and bytes, each entry for TTL_SECONDS."""

    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._ttl, self._max_entries, self._max_bytes = ttl, max_entries, max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def load(self, scope: str, keys: Sequence[str]) -> dict[str, JSON]:
        now = time.monotonic()
        found: dict[str, JSON] = {}
        for key in keys:
            entry = self._entries.get(_store_key(scope, key))
            if entry is not None and entry[0] > now:
                found[key] = orjson.loads(entry[1])
        return found

    async def save(self, scope: str, entries: Mapping[str, JSON]) -> None:
        expires = time.monotonic() + self._ttl
        for key, value in entries.items():
            data = orjson.dumps(value)
            if len(data) > MAX_ENTRY_BYTES:
                continue
            name = _store_key(scope, key)
            self._drop(name)
            self._entries[name] = (expires, data)
            self._bytes += len(data)
        while self._entries and (len(self._entries) > self._max_entries or self._bytes > self._max_bytes):
            self._drop(next(iter(self._entries)))

    def _drop(self, name: str) -> None:
        old = self._entries.pop(name, None)
        if old is not None:
            self._bytes -= len(old[1])


class RedisTurnStore:
    """In Redis, shared by the replicas that share it; a Redis failure loses the state
    (the request goes on without it), never the request."""

    def __init__(self, client: redis.asyncio.Redis | RedisCluster, prefix: str, ttl: int = TTL_SECONDS) -> None:
        self._client, self._prefix, self._ttl = client, prefix + "turn:", ttl

    async def load(self, scope: str, keys: Sequence[str]) -> dict[str, JSON]:
        if not keys:
            return {}
        names = [self._prefix + _store_key(scope, key) for key in keys]
        try:
            values: list[Any] = [await self._client.get(name) for name in names]
        except (RedisError, OSError) as exc:
            log.warning("turn state not loaded: %s", exc)
            return {}
        return {key: orjson.loads(value) for key, value in zip(keys, values, strict=True) if value}

    async def save(self, scope: str, entries: Mapping[str, JSON]) -> None:
        try:
            for key, value in entries.items():
                data = orjson.dumps(value)
                if len(data) <= MAX_ENTRY_BYTES:
                    await self._client.set(self._prefix + _store_key(scope, key), data, ex=self._ttl)
        except (RedisError, OSError) as exc:
            log.warning("turn state not kept: %s", exc)


def request_turn_keys(request: ApiRequest) -> list[str]:
    """The keys of the request's latest assistant turns."""
    messages = request.body.get("messages")
    if not isinstance(messages, list):
        return []
    keys: list[str] = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            key = turn_key(message)
            if key:
                keys.append(key)
            if len(keys) >= MAX_TURNS_LOOKED_UP:
                break
    return keys


async def restore(store: TurnStore, scope: str, request: ApiRequest) -> None:
    """Put the stored state of the request's assistant turns where its translator finds it."""
    keys = request_turn_keys(request)
    if keys:
        request.carried.given.update(await store.load(scope, keys))


async def keep(store: TurnStore, scope: str, request: ApiRequest) -> None:
    """Store the state the translator saw in the answer (once)."""
    if request.carried.seen:
        seen = dict(request.carried.seen)
        request.carried.seen.clear()
        await store.save(scope, seen)
