"""The Redis limiter and the in-process one give the same verdicts for the same requests."""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import pytest

from router.config.schema import FailurePolicy, KeyConfig, Limits, MetaData, ModelConfig, ModelType, Secret, StateConfig
from router.errors import GatewayError
from router.state.limits import Admission, Limiter, LocalLimiter
from router.state.redis import RedisState
from router.state.redis_limits import RedisLimiter
from tests.state.helpers import SHARED_REDIS, RedisServer

CALLER = KeyConfig("team-a", b"", None, Limits(rpm=5, tpm=1000),
                   MappingProxyType({"m": Limits(concurrency=2)}))
MODEL = ModelConfig("m", ModelType.CHAT, ("/v1",), MetaData(), (), limits=Limits(tpm=1500))


async def _run(limiter: Limiter) -> list[str]:
    """Admit a fixed sequence; what each step answered (headers or the refusing scope)."""
    outcomes: list[str] = []
    held = []
    for tokens in (300, 300, 300, 300, 50, 50, 50):
        try:
            admission = await limiter.admit(CALLER, MODEL, tokens)
        except GatewayError as refused:
            outcomes.append(f"{refused.status} {refused.message.split(' on ')[1]} "
                            f"{refused.headers.get('x-ratelimit-remaining-requests')}")
            continue
        headers = admission.headers
        outcomes.append(f"ok {headers['x-ratelimit-remaining-requests']} {headers['x-ratelimit-remaining-tokens']}")
        held.append(admission)
        if len(held) == 2:  # the per key-and-model concurrency of 2: release one, refunding 250 of 300
            await held.pop(0).settle(50)
            if isinstance(limiter, RedisLimiter):
                await limiter.drain()
    return outcomes


async def test_redis_and_local_limiters_agree(prefix: str) -> None:
    state = RedisState(StateConfig(redis_url=Secret(SHARED_REDIS), key_prefix=prefix))
    await state.start()
    try:
        shared = await _run(RedisLimiter(state, FailurePolicy.FAIL_CLOSED, 1))
    finally:
        await state.close()
    local = await _run(LocalLimiter())
    assert shared == local
    assert [o.split()[0] for o in shared] == ["ok", "ok", "ok", "ok", "ok", "429", "429"], shared


async def _concurrency(limiter: Limiter) -> list[str]:
    caller = KeyConfig("team-c", b"", None, None, MappingProxyType({"m": Limits(concurrency=2)}))
    outcomes: list[str] = []
    held: list[Admission] = []
    for release in (False, False, False, True, False):
        if release:
            await held.pop().settle(0)
            if isinstance(limiter, RedisLimiter):
                await limiter.drain()
        try:
            held.append(await limiter.admit(caller, MODEL, 10))
            outcomes.append("ok")
        except GatewayError as refused:
            outcomes.append(f"{refused.status} {refused.message.split(' for ')[1].split(' on ')[0]}")
    return outcomes


async def test_concurrency_slots_are_held_until_settled(prefix: str) -> None:
    state = RedisState(StateConfig(redis_url=Secret(SHARED_REDIS), key_prefix=prefix))
    await state.start()
    try:
        shared = await _concurrency(RedisLimiter(state, FailurePolicy.FAIL_CLOSED, 1))
    finally:
        await state.close()
    assert shared == await _concurrency(LocalLimiter())
    assert shared == ["ok", "ok", "429 concurrent requests", "ok", "429 concurrent requests"]


@pytest.mark.parametrize("divisor, admitted", [(1, 4), (2, 2)])
async def test_local_fallback_divides_every_limit(divisor: int, admitted: int) -> None:
    limiter = LocalLimiter(divisor=divisor)
    caller = KeyConfig("k", b"", None, Limits(concurrency=4))
    ok = 0
    for _ in range(6):
        try:
            await limiter.admit(caller, MODEL, 1)
            ok += 1
        except GatewayError:
            pass
    assert ok == admitted


async def test_scripts_are_cached_when_redis_comes_up(own_redis: RedisServer) -> None:
    state = RedisState(StateConfig(redis_url=Secret(own_redis.url), key_prefix="llmr-scripts:"))
    limiter = RedisLimiter(state, FailurePolicy.FAIL_CLOSED, 1)
    shas = (limiter._admit.sha, limiter._settle.sha)
    try:
        assert await state.client.script_exists(*shas) == [False, False]
        await state.start()  # the first probe succeeds: the recovery listeners run
        async with asyncio.timeout(2):
            while await state.client.script_exists(*shas) != [True, True]:
                await asyncio.sleep(0.01)
    finally:
        await state.close()
