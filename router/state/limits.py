"""Gateway rate limits: requests and tokens per minute, and concurrent requests,
per key, per model (all keys together) and per key and model.

Every scope is a GCRA-style bucket (capacity = the per-minute limit, refilled
continuously), so there is no fixed window that starts at the first request. One
check covers every scope a request touches and is all-or-nothing. Tokens are
reserved before the call (estimated prompt + requested output) and reconciled with
the real usage after it. A request is charged at most a whole bucket at admission,
and a bucket's debt (usage beyond the reservation) at most an hour of its limit, so
no request can drain a bucket for longer than that.

`LocalLimiter` keeps the buckets in this process (one instance only); the Redis
limiter (router/state) runs the same arithmetic in one atomic script.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router import metrics
from router.config.schema import KeyConfig, Limits, ModelConfig
from router.errors import GatewayError

MAX_UNITS = 10**12  # tokens of one request, or a limit: beyond it the number is not a real one
DEBT_MINUTES = 60  # a bucket's level never falls below -limit * this


def token_count(tokens: int) -> int:
    """A request's token reservation, range-checked before any limiter sees it."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= MAX_UNITS:
        raise GatewayError(400, f"The request asks for more tokens than can be accounted ({MAX_UNITS} at most); "
                                "lower max_tokens.", param="max_tokens", code="invalid_value")
    return tokens


def used_count(tokens: int) -> int:
    """Tokens an upstream says were used, clamped to what a limiter can account."""
    return min(MAX_UNITS, max(0, int(tokens)))


@dataclass(frozen=True, slots=True)
class Scope:
    """One limited thing: `key:team`, `model:gpt-4o` or `key-model:team:gpt-4o`."""

    name: str
    limits: Limits


def scopes_for(caller: KeyConfig, model: ModelConfig) -> list[Scope]:
    found = []
    if caller.limits:
        found.append(Scope(f"key:{caller.name}", caller.limits))
    if model.limits:
        found.append(Scope(f"model:{model.id}", model.limits))
    per_model = caller.model_limits.get(model.id)
    if per_model:
        found.append(Scope(f"key-model:{caller.name}:{model.id}", per_model))
    return found


def reserves_tokens(caller: KeyConfig, model: ModelConfig) -> bool:
    """Whether a token limit applies, so that the request's tokens must be estimated."""
    return any(scope.limits.tpm for scope in scopes_for(caller, model))


def go_duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `20ms`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one check found for the tightest request and token scopes."""

    allowed: bool
    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float = 0.0
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float = 0.0
    retry_after: float = 0.0
    refused_by: str = ""  # the scope and kind that refused: "key:team-a/rpm"

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.limit_requests is not None:
            h["x-ratelimit-limit-requests"] = str(self.limit_requests)
            h["x-ratelimit-remaining-requests"] = str(max(0, self.remaining_requests or 0))
            h["x-ratelimit-reset-requests"] = go_duration(self.reset_requests)
        if self.limit_tokens is not None:
            h["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            h["x-ratelimit-remaining-tokens"] = str(max(0, self.remaining_tokens or 0))
            h["x-ratelimit-reset-tokens"] = go_duration(self.reset_tokens)
        return h


class Admission(Protocol):
    headers: Mapping[str, str]

    async def settle(self, used_tokens: int) -> None:
        """Reconcile the reservation with the real usage and release concurrency."""
        ...


class Limiter(Protocol):
    async def admit(self, caller: KeyConfig, model: ModelConfig, tokens: int) -> Admission: ...


def refuse(verdict: Verdict, caller: KeyConfig, model: ModelConfig) -> GatewayError:
    scope, _, kind = verdict.refused_by.rpartition("/")
    metrics.RATE_LIMITED.labels(caller.name, model.id, kind).inc()
    what = {"rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "concurrent requests"}[kind]
    retry = max(1, int(verdict.retry_after + 0.999))
    headers = {**verdict.headers(), "Retry-After": str(retry)}
    return GatewayError(429, f"Rate limit reached for {what} on {scope.split(':', 1)[0]} "
                             f"'{scope.split(':', 1)[1]}'. Please try again in {retry}s.",
                        type="requests" if kind != "tpm" else "tokens", code="rate_limit_exceeded",
                        headers=headers)


@dataclass(slots=True)
class _Bucket:
    level: float
    stamp: float


@dataclass(slots=True)
class Reservation:
    """What one admission holds until it is settled: its reserved tokens and its
    concurrency slots. `release` gets the tokens used; settling twice does nothing."""

    release: Callable[[int], None]
    reserved: int
    headers: Mapping[str, str] = field(default_factory=dict)
    settled: bool = False

    async def settle(self, used_tokens: int) -> None:
        if self.settled:
            return
        self.settled = True
        self.release(used_count(used_tokens))


def _nothing_to_release(used: int) -> None:
    return None


def unlimited() -> Reservation:
    """The admission of a request that no limit applies to."""
    return Reservation(_nothing_to_release, 0)


class LocalLimiter:
    def __init__(self, divisor: int = 1) -> None:
        # Under a Redis outage each replica enforces limit / expected_replicas.
        self.divisor = max(1, divisor)
        self._buckets: dict[str, _Bucket] = {}
        self._inflight: dict[str, int] = {}

    def _level(self, name: str, capacity: float, now: float) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(capacity, now)
        else:
            bucket.level = min(capacity, bucket.level + (now - bucket.stamp) * capacity / 60.0)
            bucket.stamp = now
        return bucket

    def check(self, scopes: list[Scope], tokens: int, now: float) -> Verdict:
        best: dict[str, tuple[int, float, float]] = {}  # kind -> (limit, remaining, reset)
        for scope in scopes:
            for kind, limit, cost in (("rpm", scope.limits.rpm, 1), ("tpm", scope.limits.tpm, tokens)):
                if not limit:
                    continue
                capacity = limit / self.divisor
                bucket = self._level(f"{scope.name}/{kind}", capacity, now)
                rate = capacity / 60.0
                charge = min(cost, capacity)  # a request is charged at most the whole bucket
                if bucket.level < charge:
                    wait = (charge - bucket.level) / rate
                    # the refusing bucket's headers: the client sees what ran out
                    best[kind] = (int(capacity), max(0.0, bucket.level), (capacity - bucket.level) / rate)
                    return Verdict(False, retry_after=wait, refused_by=f"{scope.name}/{kind}",
                                   **_header_fields(best))  # type: ignore[arg-type]
                remaining = bucket.level - charge
                reset = (capacity - remaining) / rate
                if kind not in best or remaining < best[kind][1]:
                    best[kind] = (int(capacity), remaining, reset)
            concurrency = scope.limits.concurrency
            if concurrency and self._inflight.get(scope.name, 0) >= max(1, concurrency // self.divisor):
                return Verdict(False, retry_after=1.0, refused_by=f"{scope.name}/concurrency")
        return Verdict(True, **_header_fields(best))  # type: ignore[arg-type]

    def take(self, scopes: list[Scope], tokens: int) -> None:
        for scope in scopes:
            if scope.limits.rpm:
                self._buckets[f"{scope.name}/rpm"].level -= 1
            if scope.limits.tpm:
                self._buckets[f"{scope.name}/tpm"].level -= min(tokens, scope.limits.tpm / self.divisor)
            if scope.limits.concurrency:
                self._inflight[scope.name] = self._inflight.get(scope.name, 0) + 1

    def release(self, scopes: list[Scope], reserved: int, used: int) -> None:
        for scope in scopes:
            if scope.limits.tpm:
                bucket = self._buckets.get(f"{scope.name}/tpm")
                if bucket:
                    capacity = scope.limits.tpm / self.divisor
                    level = bucket.level + min(reserved, capacity) - used
                    bucket.level = max(-capacity * DEBT_MINUTES, min(capacity, level))
            if scope.limits.concurrency:
                self._inflight[scope.name] = max(0, self._inflight.get(scope.name, 0) - 1)

    async def admit(self, caller: KeyConfig, model: ModelConfig, tokens: int) -> Admission:
        scopes = scopes_for(caller, model)
        if not scopes:
            return unlimited()
        tokens = token_count(tokens)
        verdict = self.check(scopes, tokens, time.monotonic())
        if not verdict.allowed:
            raise refuse(verdict, caller, model)
        self.take(scopes, tokens)
        return Reservation(functools.partial(self.release, scopes, tokens), tokens, verdict.headers())


def _header_fields(best: dict[str, tuple[int, float, float]]) -> dict[str, float | int]:
    fields: dict[str, float | int] = {}
    if "rpm" in best:
        limit, remaining, reset = best["rpm"]
        fields.update(limit_requests=limit, remaining_requests=int(remaining), reset_requests=reset)
    if "tpm" in best:
        limit, remaining, reset = best["tpm"]
        fields.update(limit_tokens=limit, remaining_tokens=int(remaining), reset_tokens=reset)
    return fields
