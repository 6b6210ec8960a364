"""No request can poison a limit bucket: huge token counts are refused before and by
the scripts, nothing is half written, every limit key has a TTL, and a refused
argument is not taken for a Redis outage."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from router import metrics
from router.gateway import GATEWAY
from router.state.limits import DEBT_MINUTES, LocalLimiter, Scope
from router.state.redis import load_lua
from router.state.redis_limits import LEASE_MS, RENEW_MS, limit_key, reservation_key
from tests.harness import KEY_A, Gateway
from tests.state.helpers import SHARED_REDIS, chat_body, get_json, state_table

LIMITS = {"rpm": 100, "tpm": 100000, "concurrency": 10}
MAX_TTL_MS = (DEBT_MINUTES + 1) * 60_000 + 1000  # a bucket at its deepest debt, refilling


def _limit_ttls(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {key.decode(): int(client.pttl(key)) for key in client.scan_iter(match=f"{prefix}limits:*", count=1000)}


def test_a_huge_max_tokens_is_refused_and_poisons_nothing(prefix: str, tmp_path: Path) -> None:
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits=LIMITS, model_limits=LIMITS)
    client = redis.Redis.from_url(SHARED_REDIS)
    with Gateway(table) as gw:
        assert gw.app is not None
        gateway = gw.app[GATEWAY]
        gw.client().chat.completions.create(**chat_body())
        for huge in (18446744073709551615, 10**22, 2**53 + 1):
            answer = httpx.post(gw.url("/v2/chat/completions"), json=chat_body(max_tokens=huge),
                                headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10)
            assert 400 <= answer.status_code < 500, answer.text
            assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
        # Redis is fine: not degraded, still ready, and the buckets still admit.
        assert gateway.redis_ready and float(metrics.STATE_DEGRADED._value.get()) == 0
        status, ready = get_json(gw.url("/readyz"), KEY_A)
        assert status == 200 and ready["state"] == "shared"
        raw = gw.client().chat.completions.with_raw_response.create(**chat_body())
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) > 90000
        ttls = _limit_ttls(client, prefix)
    client.close()
    assert ttls and all(0 < ttl <= MAX_TTL_MS for ttl in ttls.values()), ttls


def _admit_args(tokens: object, limits: tuple[object, object, object] = (100, 100000, 10)) -> list[object]:
    return [tokens, "a" * 32, LEASE_MS, RENEW_MS, *limits]


@pytest.mark.parametrize("args", [
    _admit_args("1.1e+22"), _admit_args(18446744073709551615), _admit_args(-5), _admit_args("12.5"),
    _admit_args("nan"), _admit_args("inf"), _admit_args(10, (100, "1e30", 10)), _admit_args(10)[:-1],
])
def test_the_admit_script_refuses_bad_arguments_without_writing(prefix: str, args: list[object]) -> None:
    client = redis.Redis.from_url(SHARED_REDIS)
    scope = "key:team-a"
    keys = [limit_key(prefix, scope, kind) for kind in ("rpm", "tpm", "concurrency")]
    keys.append(reservation_key(prefix, "a" * 32))
    try:
        with pytest.raises(redis.ResponseError, match="llm-router argument"):
            client.eval(load_lua("admit.lua"), len(keys), *keys, *args)
        assert _limit_ttls(client, prefix) == {}  # nothing written
    finally:
        client.close()


def test_settle_with_absurd_usage_bounds_the_debt_and_keeps_every_ttl(prefix: str) -> None:
    client = redis.Redis.from_url(SHARED_REDIS)
    scope, tpm = "key:team-a", 1000
    keys = [limit_key(prefix, scope, kind) for kind in ("rpm", "tpm", "concurrency")]
    keys.append(reservation_key(prefix, "b" * 32))
    try:
        reply = client.eval(load_lua("admit.lua"), len(keys), *keys, *_admit_args(10**12, (0, tpm, 1)))
        assert reply[0] == 1  # a request bigger than the bucket is charged the whole bucket, not more
        assert float(client.hget(keys[1], "l") or 0) == 0
        settle_keys = [keys[3], keys[1], keys[2]]
        assert client.eval(load_lua("settle.lua"), 3, *settle_keys, "b" * 32, 10**12, 10**12, tpm) == 1
        level = float(client.hget(keys[1], "l") or 0)
        assert level == -tpm * DEBT_MINUTES  # an hour of debt at most
        ttls = _limit_ttls(client, prefix)
        assert ttls and all(0 < ttl <= MAX_TTL_MS for ttl in ttls.values()), ttls
        with pytest.raises(redis.ResponseError, match="llm-router argument"):
            client.eval(load_lua("settle.lua"), 3, *settle_keys, "b" * 32, 10, -1000000, tpm)
    finally:
        client.close()


def test_local_limiter_charges_at_most_a_bucket() -> None:
    from router.config.schema import Limits

    limiter = LocalLimiter()
    scopes = [Scope("key:team-a", Limits(tpm=1000))]
    assert limiter.check(scopes, 10**12, 0.0).allowed
    limiter.take(scopes, 10**12)
    limiter.release(scopes, 10**12, 10**12)
    assert limiter._buckets["key:team-a/tpm"].level == -1000 * DEBT_MINUTES
