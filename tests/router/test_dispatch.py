"""The pieces of dispatch on their own: weighted order, backoff, the cooldown stores
(in-process, and in the real Redis on 127.0.0.1:6379 under a test key prefix), and the
per-provider gates."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from tenacity import RetryCallState

from providers.base import UpstreamError
from router.config.schema import Cooldown, TargetConfig
from router.upstream.backpressure import Gates, Overloaded, ProviderGate
from router.upstream.cooldown import CooldownStore, LocalCooldownStore, RedisCooldownStore, TargetState
from router.upstream.dispatch import _wait, weighted_order

POLICY = Cooldown(failures=3, window=10.0, duration=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_weighted_order_prefers_heavier_targets_and_keeps_all() -> None:
    heavy, light = TargetConfig("a", "m", 3), TargetConfig("b", "m", 1)
    firsts = Counter(weighted_order([heavy, light])[0].provider for _ in range(4000))
    assert 0.70 < firsts["a"] / 4000 < 0.80  # 3:1
    assert sorted(t.provider for t in weighted_order([heavy, light])) == ["a", "b"]


def _state(error: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(None, lambda: None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_backoff_grows_with_jitter_and_retry_after_wins() -> None:
    first = [_wait(_state(UpstreamError(503, "x"), 1)) for _ in range(50)]
    second = [_wait(_state(UpstreamError(503, "x"), 2)) for _ in range(50)]
    assert all(0.25 <= w <= 0.5 for w in first) and len(set(first)) > 1
    assert all(0.5 <= w <= 0.75 for w in second)
    assert _wait(_state(UpstreamError(429, "x", retry_after=2.5), 1)) == 2.5


# --- the cooldown stores --------------------------------------------------------------


async def test_local_store_trips_after_failures_within_the_window() -> None:
    clock = Clock()
    store = LocalCooldownStore(clock)
    assert not await store.failed("p:m", POLICY)
    clock.now += 11  # the window is over: counting starts again
    assert not await store.failed("p:m", POLICY)
    assert not await store.failed("p:m", POLICY)
    assert await store.failed("p:m", POLICY)
    assert await store.check("p:m", 1.0) is TargetState.COOLING
    assert await store.check("other:m", 1.0) is TargetState.AVAILABLE


async def test_local_store_hands_out_one_probe_and_reopens_on_its_failure() -> None:
    clock = Clock()
    store = LocalCooldownStore(clock)
    for _ in range(3):
        await store.failed("p:m", POLICY)
    clock.now += 5.1
    assert await store.check("p:m", 2.0) is TargetState.PROBE
    assert await store.check("p:m", 2.0) is TargetState.COOLING  # one probe at a time
    assert await store.failed("p:m", POLICY)  # the probe failed: out again at once
    assert await store.check("p:m", 2.0) is TargetState.COOLING
    clock.now += 5.1
    assert await store.check("p:m", 2.0) is TargetState.PROBE
    assert await store.succeeded("p:m")
    assert await store.check("p:m", 2.0) is TargetState.AVAILABLE
    assert not await store.succeeded("p:m")


async def test_local_store_lost_probe_expires() -> None:
    clock = Clock()
    store = LocalCooldownStore(clock)
    for _ in range(3):
        await store.failed("p:m", POLICY)
    clock.now += 5.1
    assert await store.check("p:m", 2.0) is TargetState.PROBE
    clock.now += 2.1  # the probe never reported back
    assert await store.check("p:m", 2.0) is TargetState.PROBE


@pytest.fixture
async def redis_client() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    prefix = f"llmr-test-{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis(host="127.0.0.1", port=6379, socket_timeout=1)
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_store_is_shared_by_replicas(redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    short = Cooldown(failures=2, window=10.0, duration=0.3)
    one: CooldownStore = RedisCooldownStore(client, prefix, 0.5)
    two: CooldownStore = RedisCooldownStore(client, prefix, 0.5)
    assert not await one.failed("azure:gpt-4o", short)
    assert await two.failed("azure:gpt-4o", short)  # failures counted together
    assert await one.check("azure:gpt-4o", 1.0) is TargetState.COOLING
    assert await two.check("azure:gpt-4o", 1.0) is TargetState.COOLING
    keys = sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}*")])
    assert keys and all(k.startswith(f"{prefix}{{cooldown}}:") for k in keys)  # one hash slot
    await asyncio.sleep(0.35)
    assert await two.check("azure:gpt-4o", 1.0) is TargetState.PROBE
    assert await one.check("azure:gpt-4o", 1.0) is TargetState.COOLING  # the other replica waits for it
    assert await two.succeeded("azure:gpt-4o")
    assert await one.check("azure:gpt-4o", 1.0) is TargetState.AVAILABLE


async def test_redis_store_probe_failure_reopens(redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    short = Cooldown(failures=1, window=10.0, duration=0.2)
    store = RedisCooldownStore(client, prefix, 0.5)
    assert await store.failed("p:m", short)
    assert not await store.failed("p:m", short)  # a late failure while out changes nothing
    await asyncio.sleep(0.25)
    assert await store.check("p:m", 1.0) is TargetState.PROBE
    assert await store.failed("p:m", short)
    assert await store.check("p:m", 1.0) is TargetState.COOLING


async def test_an_unreachable_redis_never_fails_or_slows_a_request() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=0.2, socket_connect_timeout=0.2)
    store = RedisCooldownStore(client, "llmr-test-down:", 0.2)
    started = time.monotonic()
    policy = Cooldown(failures=2, window=10.0, duration=5.0)
    assert await store.check("p:m", 1.0) is TargetState.AVAILABLE
    assert not await store.failed("p:m", policy)
    assert await store.failed("p:m", policy)  # counted in-process meanwhile
    assert await store.check("p:m", 1.0) is TargetState.COOLING
    assert time.monotonic() - started < 0.5  # one failed call, then Redis is skipped for a while
    await client.aclose()


# --- the gates ------------------------------------------------------------------------


async def test_gate_queues_up_to_its_limit_then_refuses() -> None:
    gate = ProviderGate("slow", max_concurrency=2, max_queue=1)
    await gate.acquire(1.0)
    await gate.acquire(1.0)
    queued = asyncio.create_task(gate.acquire(1.0))
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as refused:
        await gate.acquire(1.0)
    assert refused.value.status == 503 and refused.value.code == "provider_overloaded"
    gate.release()
    await asyncio.wait_for(queued, 1.0)  # a slot freed up: the queued request got it
    with pytest.raises(Overloaded, match="deadline"):
        await gate.acquire(0.05)  # waited in the queue past its deadline
    assert gate.waiting == 0


def test_gates_follow_the_table_limits() -> None:
    gates = Gates()
    first = gates.for_provider("p", 4, 8)
    assert gates.for_provider("p", 4, 8) is first
    assert gates.for_provider("p", 5, 8) is not first


async def test_redis_store_skips_redis_while_the_state_backend_says_it_is_down(
        redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    up = False
    store = RedisCooldownStore(client, prefix, 0.5, available=lambda: up)
    assert await store.failed("p:m", Cooldown(failures=1, window=10.0, duration=5.0))  # in-process only
    assert [k async for k in client.scan_iter(match=f"{prefix}*")] == []
    up = True
    assert await store.check("p:m", 1.0) is TargetState.AVAILABLE  # Redis knows of no cooldown


async def test_a_healthy_target_costs_no_redis_round_trip(redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    store = RedisCooldownStore(client, prefix, 0.5)
    calls: list[str] = []
    original = store._call

    async def counting(command):  # type: ignore[no-untyped-def]
        calls.append("redis")
        return await original(command)

    store._call = counting  # type: ignore[method-assign]
    for _ in range(50):
        assert await store.check("openai:gpt-4o", 1.0) is TargetState.AVAILABLE
    assert calls == ["redis"]  # the one read of the tripped set, mirrored for a second
    other = RedisCooldownStore(client, prefix, 0.5)
    assert await other.failed("openai:gpt-4o", Cooldown(failures=1, window=10.0, duration=30.0))
    assert await store.check("openai:gpt-4o", 1.0) is TargetState.AVAILABLE  # not seen yet: mirrored < 1 s ago
    store._mirrored_at -= 1.0
    assert await store.check("openai:gpt-4o", 1.0) is TargetState.COOLING  # seen at the next read
