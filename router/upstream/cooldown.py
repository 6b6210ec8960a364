"""Cooldowns (circuit breaking) per target: a target that fails `cooldown.failures`
times within `cooldown.window` seconds is out for `cooldown.duration` seconds; after
that one request probes it (half-open) while the others still keep away. A probe
that succeeds closes the circuit; one that fails opens it again at once.

The state is shared across replicas through Redis when one is configured (one
replica's discovery protects all) and kept in-process otherwise. Redis is never
allowed to fail or slow a request: each call is bounded by `state.socket_timeout`,
and an error switches to the in-process state for a few seconds.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from router.config.schema import Cooldown
from router.state.redis import STATE_ERRORS, describe
from router.upstream.backpressure import Gates

log = logging.getLogger("llm_router")

RedisClient = aioredis.Redis | RedisCluster
REDIS_RETRY_AFTER = 5.0  # seconds of in-process state after a Redis error, before Redis is tried again


class TargetState(enum.Enum):
    AVAILABLE = "available"
    COOLING = "cooling"  # out: do not send it requests
    PROBE = "probe"  # the cooldown is over and this request is the one that probes it


class CooldownStore(Protocol):
    async def check(self, target: str, probe_ttl: float) -> TargetState:
        """The target's state for one request; PROBE is handed to one request at a time
        (for at most `probe_ttl` seconds, so that a lost probe does not block it forever)."""
        ...

    async def failed(self, target: str, policy: Cooldown) -> bool:
        """Count a retryable failure; True when this failure took the target out."""
        ...

    async def succeeded(self, target: str) -> bool:
        """A request that was let through a cooldown (a probe) succeeded: close the
        circuit. True when the target was out and is back."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Local:
    failures: int = 0
    window_end: float = 0.0
    cool_until: float = 0.0
    tripped: bool = False  # set while out or half-open, until a request succeeds
    probe_until: float = 0.0


class LocalCooldownStore:
    """The in-process state: one instance only, or while Redis is unreachable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._targets: dict[str, _Local] = {}

    async def check(self, target: str, probe_ttl: float) -> TargetState:
        state = self._targets.get(target)
        if state is None or not state.tripped:
            return TargetState.AVAILABLE
        now = self._clock()
        if now < state.cool_until or now < state.probe_until:
            return TargetState.COOLING
        state.probe_until = now + probe_ttl
        return TargetState.PROBE

    async def failed(self, target: str, policy: Cooldown) -> bool:
        now = self._clock()
        state = self._targets.setdefault(target, _Local())
        if state.tripped:
            if now < state.cool_until:
                return False  # a late failure of a request sent before the cooldown
            return self._trip(state, now, policy)  # the probe failed: out again at once
        if now >= state.window_end:
            state.failures, state.window_end = 0, now + policy.window
        state.failures += 1
        return state.failures >= policy.failures and self._trip(state, now, policy)

    @staticmethod
    def _trip(state: _Local, now: float, policy: Cooldown) -> bool:
        state.failures, state.window_end = 0, 0.0
        state.cool_until, state.tripped, state.probe_until = now + policy.duration, True, 0.0
        return True

    async def succeeded(self, target: str) -> bool:
        state = self._targets.get(target)
        if state is None or not state.tripped:
            return False
        del self._targets[target]
        return True

    async def close(self) -> None:
        return None


# KEYS: failures, cool, tripped, probe, index. ARGV: window ms, failures, duration ms, tripped ms, target.
# A probe that fails (tripped, no longer cooling) opens the circuit again at once. A trip is
# also recorded in the index (a sorted set by expiry) that replicas read to mirror it.
_FAILED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 0 then
  local n = redis.call('INCR', KEYS[1])
  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
  if n < tonumber(ARGV[2]) then return 0 end
end
if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[3]) end
redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
redis.call('DEL', KEYS[1], KEYS[4])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[5], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[4]), ARGV[5])
return 1
"""

# KEYS: cool, tripped, probe. ARGV: probe ms. 0 available, 1 cooling, 2 probe.
_CHECK = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 2 end
return 1
"""

# KEYS: tripped, probe, index. ARGV: target. 1 when the target was out.
_SUCCEEDED = """
local n = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return n
"""

# KEYS: index. The targets tripped now (expired entries dropped).
_TRIPPED = """
local t = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t[1] * 1000 + math.floor(t[2] / 1000))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_STATES = {0: TargetState.AVAILABLE, 1: TargetState.COOLING, 2: TargetState.PROBE}
MIRROR_SECONDS = 1.0  # how stale a replica's view of the others' trips may be


class RedisCooldownStore:
    """Cooldowns shared by every replica using the same Redis and key prefix.

    A healthy target costs no Redis round trip: each replica mirrors the set of
    tripped targets, re-read at most once a second (so one replica's discovery
    reaches the others within a second), and asks Redis about a target only while
    it is tripped. Keys carry the `{cooldown}` hash tag, so that each script's keys
    live in one slot of a Redis Cluster. TTLs are Redis's own clock."""

    def __init__(self, client: RedisClient, key_prefix: str, timeout: float,
                 available: Callable[[], bool] = lambda: True, fallback: LocalCooldownStore | None = None) -> None:
        self._available = available  # the state backend's own breaker: False while Redis is known down
        self._prefix = f"{key_prefix}{{cooldown}}:"
        self._index = f"{self._prefix}index"
        self._timeout = timeout
        self._fallback = fallback or LocalCooldownStore()
        self._failed_script = client.register_script(_FAILED)
        self._check_script = client.register_script(_CHECK)
        self._succeeded_script = client.register_script(_SUCCEEDED)
        self._tripped_script = client.register_script(_TRIPPED)
        self._skip_until = 0.0
        self._tripped: set[str] = set()  # the mirror
        self._mirrored_at = float("-inf")
        self._mirroring: asyncio.Task[None] | None = None

    def _keys(self, target: str, *names: str) -> list[str]:
        return [f"{self._prefix}{name}:{target}" for name in names]

    def _usable(self) -> bool:
        return time.monotonic() >= self._skip_until and self._available()

    async def check(self, target: str, probe_ttl: float) -> TargetState:
        if not self._usable():
            return await self._fallback.check(target, probe_ttl)
        if time.monotonic() - self._mirrored_at >= MIRROR_SECONDS:
            if self._mirroring is None or self._mirroring.done():
                self._mirroring = asyncio.get_running_loop().create_task(self._mirror())
            await asyncio.shield(self._mirroring)
        if target not in self._tripped:
            return TargetState.AVAILABLE
        keys = self._keys(target, "cool", "tripped", "probe")
        result = await self._call(self._check_script(keys=keys, args=[_ms(probe_ttl)]))
        if result is None:
            return await self._fallback.check(target, probe_ttl)
        state = _STATES.get(int(result), TargetState.AVAILABLE)
        if state is TargetState.AVAILABLE:
            self._tripped.discard(target)
        return state

    async def _mirror(self) -> None:
        result = await self._call(self._tripped_script(keys=[self._index]))
        self._mirrored_at = time.monotonic()
        if result is not None:
            self._tripped = {m.decode() if isinstance(m, bytes) else str(m) for m in result}

    async def failed(self, target: str, policy: Cooldown) -> bool:
        local = await self._fallback.failed(target, policy)  # also kept locally, for when Redis fails
        keys = self._keys(target, "failures", "cool", "tripped", "probe") + [self._index]
        tripped_ms = _ms(policy.duration + max(60.0, policy.duration))  # half-open state outlives the cooldown
        args: list[int | str] = [_ms(policy.window), policy.failures, _ms(policy.duration), tripped_ms, target]
        result = await self._call(self._failed_script(keys=keys, args=args))
        if result is None:
            return local
        if result:
            self._tripped.add(target)
        return bool(result)

    async def succeeded(self, target: str) -> bool:
        local = await self._fallback.succeeded(target)
        self._tripped.discard(target)
        keys = self._keys(target, "tripped", "probe") + [self._index]
        result = await self._call(self._succeeded_script(keys=keys, args=[target]))
        return local if result is None else int(result) > 0

    async def close(self) -> None:
        if self._mirroring is not None:
            await asyncio.gather(self._mirroring, return_exceptions=True)

    async def _call(self, command: Awaitable[Any]) -> Any:
        """The command's result, or None when Redis failed or is being skipped."""
        if not self._usable():
            _close(command)
            return None
        try:
            async with asyncio.timeout(self._timeout):
                return await command
        except STATE_ERRORS as exc:  # the cluster client raises more than RedisError while a slot moves
            log.warning("cooldown state unreachable in Redis; using in-process state",
                        extra={"fields": {"cause": describe(exc), "error": type(exc).__name__,
                                          "retry_in_s": REDIS_RETRY_AFTER}})
            self._skip_until = time.monotonic() + REDIS_RETRY_AFTER
            return None


def _close(command: Awaitable[Any]) -> None:
    close = getattr(command, "close", None)
    if callable(close):
        close()  # a coroutine never awaited would warn


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def cooldown_store(client: RedisClient | None, key_prefix: str, timeout: float,
                   available: Callable[[], bool] = lambda: True) -> CooldownStore:
    """Shared in Redis where a client is given, in-process otherwise."""
    if client is None:
        return LocalCooldownStore()
    return RedisCooldownStore(client, key_prefix, timeout, available)


class Guards:
    """What protects the upstreams of one gateway, kept across table reloads: the
    cooldown store, the per-provider gates, and which cooldown gauges are set here."""

    def __init__(self, cooldowns: CooldownStore, gates: Gates) -> None:
        self.cooldowns = cooldowns
        self.gates = gates
        self.cooling: set[tuple[str, str]] = set()  # (provider, model) labels whose gauge is 1 here
