"""The store of providers' opaque turn state: scoped to the API key, bounded, expiring,
in process or in Redis, and never failing a request when Redis does."""

from __future__ import annotations

import pytest
import redis.asyncio

from providers.base import ApiRequest, Operation
from router.state.turns import MAX_ENTRY_BYTES, MemoryTurnStore, RedisTurnStore, keep, request_turn_keys, restore
from tests.state.helpers import SHARED_REDIS

STATE = {"protocol": "anthropic", "thinking": [{"at": 0, "block": {"type": "thinking", "signature": "sig"}}]}


def chat(*messages: dict[str, object]) -> ApiRequest:
    return ApiRequest(Operation.CHAT, {"messages": list(messages)}, "m")


async def test_a_key_gets_back_its_own_state_and_another_key_gets_nothing() -> None:
    store = MemoryTurnStore()
    answered = chat()
    answered.carried.seen["call:toolu_1"] = STATE
    await keep(store, "team-a", answered)
    assert answered.carried.seen == {}
    follow = {"role": "assistant", "tool_calls": [{"id": "toolu_1"}]}
    mine, theirs = chat(follow), chat(follow)
    await restore(store, "team-a", mine)
    await restore(store, "team-b", theirs)  # the same id, forged or copied by another key
    assert mine.carried.given == {"call:toolu_1": STATE}
    assert theirs.carried.given == {}


async def test_memory_store_is_bounded_and_expires() -> None:
    store = MemoryTurnStore(ttl=60, max_entries=3)
    for i in range(5):
        await store.save("k", {f"call:{i}": STATE})
    assert sorted(await store.load("k", [f"call:{i}" for i in range(5)])) == ["call:2", "call:3", "call:4"]
    await store.save("k", {"call:big": {"blob": "x" * MAX_ENTRY_BYTES}})
    assert await store.load("k", ["call:big"]) == {}
    expired = MemoryTurnStore(ttl=-1)
    await expired.save("k", {"call:1": STATE})
    assert await expired.load("k", ["call:1"]) == {}


def test_the_latest_assistant_turns_are_looked_up() -> None:
    request = chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"},
                   {"role": "assistant", "tool_calls": [{"id": "call_9"}]}, {"role": "assistant", "content": ""})
    keys = request_turn_keys(request)
    assert keys[0] == "call:call_9" and keys[1].startswith("text:") and len(keys) == 2


async def test_redis_store_shares_state_and_expires_it(prefix: str) -> None:
    client = redis.asyncio.from_url(SHARED_REDIS)
    try:
        one, two = RedisTurnStore(client, prefix), RedisTurnStore(client, prefix)  # two replicas
        await one.save("team-a", {"call:toolu_1": STATE})
        assert await two.load("team-a", ["call:toolu_1"]) == {"call:toolu_1": STATE}
        assert await two.load("team-b", ["call:toolu_1"]) == {}
        ttl = await client.ttl(next(iter(await client.keys(prefix + "turn:*"))))
        assert 0 < ttl <= 24 * 3600
    finally:
        await client.aclose()


async def test_redis_down_loses_state_not_requests() -> None:
    client = redis.asyncio.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    store = RedisTurnStore(client, "x:")
    try:
        await store.save("k", {"call:1": STATE})
        assert await store.load("k", ["call:1"]) == {}
    finally:
        await client.aclose()


@pytest.mark.parametrize("message", [{"role": "assistant", "content": None}, {"role": "assistant", "content": []}])
def test_empty_turns_have_no_key(message: dict[str, object]) -> None:
    assert request_turn_keys(chat(message)) == []
