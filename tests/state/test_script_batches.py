"""Script calls batched into one pipelined round trip, also after Redis lost its scripts."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from router.state.redis import LuaScript


async def test_a_batch_runs_in_one_round_trip_and_survives_a_script_flush() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    prefix = f"llmr-test-{uuid.uuid4().hex[:8]}:"
    script = LuaScript("meter.lua")
    try:
        await client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        counts = [60, "requests", 1, "prompt_tokens", 2, "completion_tokens", 3, "total_tokens", 5, "errors", 0]
        calls = [([f"{prefix}counters", f"{prefix}seen:{i}"], counts) for i in range(3)]
        assert await script.run_many(client, calls) == [1, 1, 1]
        assert await script.run_many(client, calls) == [0, 0, 0]  # the same requests again count nothing
        counters = await client.hgetall(f"{prefix}counters")
        assert counters[b"requests"] == b"3" and counters[b"total_tokens"] == b"15"
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
