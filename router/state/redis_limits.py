"""Rate limits shared by every replica: one atomic Lua script per admission.

Key layout: every limit key of a deployment carries the same hash tag,
`{<prefix>limits}`, so all of them live in one Redis Cluster slot. That is what
makes one request's check a single atomic script: the scopes of different requests
form one connected graph (a key's scope spans all its models, a model's scope
spans all keys), so no finer tag puts every request's scopes together, and
splitting a check over slots would give up all-or-nothing (or need a second round
trip to roll back). An admission is a few dozen microseconds of Redis time, so one
shard carries tens of thousands of admissions a second; metering, the bulk of the
writes, is spread over slots by day/key/model (router/state/redis_meter.py).

On the client's path: one EVALSHA (admit). Settling (token refund, concurrency
release) runs in the background after the response; it is idempotent (the first
settle of an admission deletes its reservation key) so a retry never refunds twice.

A concurrency slot and a reservation are leases of `LEASE_MS`, renewed every
`RENEW_MS` by the replica while the request lives: a replica that dies (kill -9,
node lost) holds its slots for at most `LEASE_MS`.

Every argument is an integer range-checked here and again by the scripts, which
refuse a bad one before writing anything (an error reply that is the request's
fault, not Redis's: it never opens the state breaker).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import deque
from typing import Any

from router.config.schema import FailurePolicy, KeyConfig, ModelConfig
from router.errors import GatewayError
from router.state.limits import (
    MAX_UNITS,
    Admission,
    LocalLimiter,
    Reservation,
    Scope,
    Verdict,
    refuse,
    scopes_for,
    token_count,
    unlimited,
)
from router.state.redis import STATE_ERRORS, LuaScript, RedisState, ScriptArgumentError

log = logging.getLogger("llm_router")

LEASE_MS = 15_000  # a crashed replica's concurrency slots and reservations expire within this
RENEW_MS = 5_000  # a live replica renews its leases this often (two renewals may be late)
RENEW_BATCH = 500  # admissions per renewal script call
MAX_UNSETTLED = 10_000  # settles kept for replay while Redis is down
SETTLE_LINGER = 0.005  # seconds a settle waits for others to share its round trip
KINDS = {1: "rpm", 2: "tpm", 3: "concurrency"}
Settle = tuple[str, list[Scope], int, int]  # admission id, its scopes, tokens reserved, tokens used


def limit_key(prefix: str, scope: str, kind: str) -> str:
    return f"{prefix}limits:{{{prefix}limits}}:{scope}/{kind}"


def reservation_key(prefix: str, admission_id: str) -> str:
    return f"{prefix}limits:{{{prefix}limits}}:reservation:{admission_id}"


def verdict_from_script(reply: list[int], scopes: list[Scope]) -> Verdict:
    allowed, scope_index, kind, retry_ms, rpm_limit, rpm_left, rpm_reset, tpm_limit, tpm_left, tpm_reset = (
        int(v) for v in reply)
    fields: dict[str, float | int] = {}
    if rpm_limit >= 0:
        fields.update(limit_requests=rpm_limit, remaining_requests=rpm_left, reset_requests=rpm_reset / 1000)
    if tpm_limit >= 0:
        fields.update(limit_tokens=tpm_limit, remaining_tokens=tpm_left, reset_tokens=tpm_reset / 1000)
    refused_by = f"{scopes[scope_index].name}/{KINDS[kind]}" if not allowed else ""
    return Verdict(bool(allowed), retry_after=retry_ms / 1000, refused_by=refused_by, **fields)  # type: ignore[arg-type]




class RedisLimiter:
    def __init__(self, state: RedisState, policy: FailurePolicy, expected_replicas: int) -> None:
        self.state = state
        self.policy = policy
        # While Redis is down each replica enforces limit / expected_replicas on its own.
        self.local = LocalLimiter(divisor=expected_replicas)
        self._admit = LuaScript("admit.lua")
        self._settle = LuaScript("settle.lua")
        self._renew = LuaScript("renew.lua")
        self._settling: set[asyncio.Task[None]] = set()
        self._pending: list[Settle] = []  # settles waiting for the next batch
        self._unsettled: deque[Settle] = deque(maxlen=MAX_UNSETTLED)
        self._leases: dict[str, list[Scope]] = {}  # admissions in flight holding a reservation
        self._renewer: asyncio.Task[None] | None = None
        state.on_recovery(self.load_scripts)
        state.on_recovery(self.replay_unsettled)

    async def load_scripts(self) -> None:
        """Redis (back) up: cache the scripts now, so that admissions find them by SHA."""
        try:
            for script in (self._admit, self._settle, self._renew):
                await self.state.client.script_load(script.source)
        except STATE_ERRORS as exc:
            log.warning("could not preload the limit scripts; EVAL loads them on first use",
                        extra={"fields": {"error": f"{type(exc).__name__}: {exc}"[:200]}})

    async def admit(self, caller: KeyConfig, model: ModelConfig, tokens: int) -> Admission:
        scopes = scopes_for(caller, model)
        if not scopes:
            return unlimited()
        tokens = token_count(tokens)
        if self.state.available():
            try:
                return await self._admit_shared(scopes, tokens, caller, model)
            except GatewayError:
                raise  # a refusal (429) is an answer, not a failure
            except ScriptArgumentError as exc:
                raise _refused_arguments(exc) from None
            except STATE_ERRORS as exc:
                self.state.failed(exc)
        if self.policy is FailurePolicy.FAIL_CLOSED:
            raise GatewayError(503, "Rate limits cannot be checked right now (the shared state is unreachable); "
                                    "please retry shortly.", code="state_unavailable", headers={"Retry-After": "1"})
        return await self.local.admit(caller, model, tokens)

    async def _admit_shared(self, scopes: list[Scope], tokens: int, caller: KeyConfig,
                            model: ModelConfig) -> Admission:
        prefix = self.state.prefix
        admission_id = f"{random.getrandbits(128):032x}"  # an id, not a secret: no system call
        keys: list[str] = []
        args: list[int | str] = [tokens, admission_id, LEASE_MS, RENEW_MS]
        for scope in scopes:
            keys += [limit_key(prefix, scope.name, kind) for kind in ("rpm", "tpm", "concurrency")]
            args += _limit_args(scope)
        keys.append(reservation_key(prefix, admission_id))
        async with asyncio.timeout(self.state.config.socket_timeout * 4):
            reply = await self._admit(self.state.client, keys, args)
        self.state.succeeded()
        verdict = verdict_from_script(reply, scopes)
        if not verdict.allowed:
            raise refuse(verdict, caller, model)
        if any(s.limits.tpm or s.limits.concurrency for s in scopes):
            self._hold_lease(admission_id, scopes)
        # Settling never waits on Redis: it is queued and runs after the response.
        return Reservation(functools.partial(self.settle_later, admission_id, scopes, tokens), tokens,
                           verdict.headers())

    def _hold_lease(self, admission_id: str, scopes: list[Scope]) -> None:
        self._leases[admission_id] = scopes
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_leases())

    async def _renew_leases(self) -> None:
        """While this replica has admissions in flight, extend their leases every RENEW_MS."""
        while self._leases:
            await asyncio.sleep(RENEW_MS / 1000)
            if not self.state.available():
                continue
            admissions = list(self._leases.items())
            calls = [self._renewal(admissions[i:i + RENEW_BATCH]) for i in range(0, len(admissions), RENEW_BATCH)]
            try:
                async with asyncio.timeout(self.state.config.socket_timeout * 4):
                    await self._renew.run_many(self.state.client, calls)
                self.state.succeeded()
            except STATE_ERRORS as exc:
                self.state.failed(exc)

    def _renewal(self, admissions: list[tuple[str, list[Scope]]]) -> tuple[list[str], list[Any]]:
        prefix = self.state.prefix
        keys: list[str] = []
        args: list[Any] = [LEASE_MS]
        for admission_id, scopes in admissions:
            held = [limit_key(prefix, s.name, "concurrency") for s in scopes if s.limits.concurrency]
            keys += [reservation_key(prefix, admission_id), *held]
            args += [admission_id, len(held)]
        return keys, args

    def settle_later(self, admission_id: str, scopes: list[Scope], reserved: int, used: int) -> None:
        """Queue the reconciliation; the settles of requests ending close together go
        to Redis in one pipelined round trip, after the responses."""
        self._leases.pop(admission_id, None)
        if not any(s.limits.tpm or s.limits.concurrency for s in scopes):
            return  # nothing reserved beyond the request itself
        self._pending.append((admission_id, scopes, reserved, min(MAX_UNITS, max(0, used))))
        # A concurrency slot is given back at once (a client's next request may be waiting
        # for it); token refunds wait a moment for others to share their round trip.
        holds_slot = any(s.limits.concurrency for s in scopes)
        if len(self._pending) == 1 or holds_slot:
            linger = 0.0 if holds_slot else SETTLE_LINGER
            task = asyncio.get_running_loop().create_task(self._settle_pending(linger))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle_pending(self, linger: float) -> None:
        if linger:
            await asyncio.sleep(linger)  # let the requests ending meanwhile join the batch
        batch, self._pending = self._pending, []
        if not batch:
            return  # an earlier flush took them
        if not self.state.available():
            self._unsettled.extend(batch)
            return
        prefix = self.state.prefix
        calls: list[tuple[list[str], list[Any]]] = []
        for admission_id, scopes, reserved, used in batch:
            keys = [reservation_key(prefix, admission_id)]
            for scope in scopes:
                keys += [limit_key(prefix, scope.name, "tpm"), limit_key(prefix, scope.name, "concurrency")]
            calls.append((keys, [admission_id, reserved, used, *(_limit_args(s)[1] for s in scopes)]))
        try:
            async with asyncio.timeout(self.state.config.socket_timeout * 4):
                await self._settle.run_many(self.state.client, calls)  # idempotent: a retry refunds nothing twice
            self.state.succeeded()
        except ScriptArgumentError as exc:  # a bug, not an outage: a retry would fail the same way
            log.error("settle refused by the limit script; its reservations expire on their own",
                      extra={"fields": {"error": str(exc)[:200], "count": len(batch)}})
        except STATE_ERRORS as exc:
            self.state.failed(exc)
            self._unsettled.extend(batch)

    async def replay_unsettled(self) -> None:
        """Redis is back: settle what could not be settled while it was down."""
        while self._unsettled and self.state.available():
            self.settle_later(*self._unsettled.popleft())

    async def drain(self) -> None:
        """Wait for the settles in flight (tests, shutdown)."""
        while self._settling:
            await asyncio.gather(*list(self._settling), return_exceptions=True)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self.drain()
        if self._unsettled:
            log.warning("admissions left unsettled at shutdown; their reservations expire on their own",
                        extra={"fields": {"count": len(self._unsettled)}})


def _limit_args(scope: Scope) -> list[int]:
    """rpm, tpm, concurrency of a scope as the scripts take them (0: none; a limit past
    MAX_UNITS is no limit a client could reach)."""
    limits = scope.limits
    return [min(MAX_UNITS, value or 0) for value in (limits.rpm, limits.tpm, limits.concurrency)]


def _refused_arguments(exc: BaseException) -> GatewayError:
    log.error("limit script refused its arguments; request refused",
              extra={"fields": {"error": str(exc)[:200]}})
    return GatewayError(400, "The request's token counts are out of the range the rate limits can account; "
                             "lower max_tokens.", param="max_tokens", code="invalid_value")
