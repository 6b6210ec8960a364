"""Stored Responses API responses (`store: true`): the Response object, the input items it
answered and the conversation before them, for `previous_response_id`, GET, DELETE and
`input_items`.

Each record belongs to the key that made it: the key's name is part of where it is kept,
so another key's lookup finds nothing (and answers the same 404 as a missing one). In
Redis when one is configured (one string per response, expiring after the retention),
else in this process (bounded: the oldest go first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis.exceptions

from providers.base import JSON

log = logging.getLogger("llm_router")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: JSON  # the Response object as the client got it
    input: list[JSON]  # the input items of this request, as items with ids
    context: list[JSON]  # the conversation before them (from previous_response_id)

    def conversation(self) -> list[JSON]:
        """Everything a follow-up with `previous_response_id` continues from."""
        output = self.response.get("output")
        return [*self.context, *self.input, *(output if isinstance(output, list) else [])]

    def dumps(self) -> bytes:
        return orjson.dumps({"response": self.response, "input": self.input, "context": self.context})

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredResponse | None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
            return None
        return cls(data["response"], list(data.get("input") or []), list(data.get("context") or []))


class ResponseStore(Protocol):
    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None: ...

    async def get(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def delete(self, owner: str, response_id: str) -> bool: ...


class LocalResponseStore:
    """In-process: at most `max_items` records, each kept `retention` seconds."""

    def __init__(self, retention: float, max_items: int) -> None:
        self.retention = retention
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        self._items[(owner, response_id)] = (time.monotonic() + self.retention, record.dumps())
        self._items.move_to_end((owner, response_id))
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        found = self._items.get((owner, response_id))
        if found is None:
            return None
        if found[0] < time.monotonic():
            del self._items[(owner, response_id)]
            return None
        return StoredResponse.loads(found[1])

    async def delete(self, owner: str, response_id: str) -> bool:
        return self._items.pop((owner, response_id), None) is not None


class StoreUnavailable(Exception):
    """Redis did not answer: the caller answers 503 rather than a wrong 404."""


class RedisResponseStore:
    def __init__(self, client: Any, prefix: str, retention: float) -> None:
        self.client = client
        self.prefix = prefix
        self.retention = max(1, int(retention))

    def _key(self, owner: str, response_id: str) -> str:
        # The owner in braces: one hash slot per key name on a Redis Cluster.
        return f"{self.prefix}responses:{{{owner}}}:{response_id}"

    async def put(self, owner: str, response_id: str, record: StoredResponse) -> None:
        try:
            await self.client.set(self._key(owner, response_id), record.dumps(), ex=self.retention)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("a Responses API response could not be stored", extra={"fields": {
                "event": "responses_store_failed", "response_id": response_id, "error": type(exc).__name__}})
            raise StoreUnavailable from None

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        try:
            raw = await self.client.get(self._key(owner, response_id))
        except (redis.exceptions.RedisError, OSError):
            raise StoreUnavailable from None
        return None if raw is None else StoredResponse.loads(raw)

    async def delete(self, owner: str, response_id: str) -> bool:
        try:
            return bool(await self.client.delete(self._key(owner, response_id)))
        except (redis.exceptions.RedisError, OSError):
            raise StoreUnavailable from None
