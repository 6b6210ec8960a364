"""Redis faults other than an outage: a wrong password, a full Redis, a Redis that
lost its data, exceptions from the cluster client, failing recovery listeners, and
usage counts no counter may take."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import pytest
import redis

from router import metrics
from router.config.schema import parse
from router.gateway import GATEWAY
from router.state.metering import LocalMeter, UsageRecord, today
from router.state.redis import RedisState
from router.state.redis_meter import SEEN_TTL, RedisMeter
from tests.harness import ADMIN_KEY, KEY_A, Gateway
from tests.state.helpers import (
    SHARED_REDIS,
    RedisServer,
    burst,
    chat_body,
    get_json,
    state_table,
    usage_rows,
    wait_for_usage,
    wait_until,
)

PASSWORD = "s3cret-redis-pass-test"


def _degraded() -> float:
    return float(metrics.STATE_DEGRADED._value.get())


def _messages(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, Any]]]:
    return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]


def test_a_wrong_password_is_logged_as_such_without_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer(tmp_path, None, "--requirepass", PASSWORD) as server:
        url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0"
        with Gateway(state_table(url, "llmr-auth:", tmp_path / "spool.jsonl")) as gw:
            gw.client().chat.completions.create(**chat_body())  # fail_open: served
    logged = _messages(caplog)
    causes = [fields.get("cause", "") for _, fields in logged]
    assert any(cause.startswith("authentication failed") for cause in causes), logged
    assert not any(PASSWORD in f"{message} {fields}" for message, fields in logged)


def test_a_full_redis_degrades_without_500s_and_stays_ready(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with RedisServer(tmp_path, None, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction") as server:
        table = state_table(server.url, "llmr-full:", tmp_path / "spool.jsonl", key_limits={"rpm": 1000})
        with Gateway(table) as gw:
            assert gw.app is not None
            gateway = gw.app[GATEWAY]
            wait_until(lambda: gateway.redis_ready, 5)
            filler = redis.Redis(port=server.port)
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                for n in range(10_000):
                    filler.set(f"filler:{n}", b"x" * 4096)
            statuses = asyncio.run(burst([gw.url("/v2")], 20))
            assert statuses == [200] * 20
            wait_until(lambda: not gateway.redis_ready, 5)
            assert _degraded() == 1
            status, ready = get_json(gw.url("/readyz"), KEY_A)
            assert status == 200 and ready["state"] == "degraded"
            assert any(f.get("cause", "").startswith("Redis is out of memory") for _, f in _messages(caplog))
            filler.flushall()  # room again: the probe's write succeeds, the spool is replayed
            filler.close()
            wait_until(lambda: gateway.redis_ready, 5)
            assert wait_for_usage(gw.url(""), ADMIN_KEY, 20)["requests"] == 20


def test_usage_reappears_after_redis_restarts_empty(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # no persistence: a restart loses everything
    with server:
        table = state_table(server.url, "llmr-empty:", tmp_path / "spool.jsonl")
        with Gateway(table) as first, Gateway(table) as second:
            for gw in (first, second):
                gw.client().chat.completions.create(**chat_body())
            wait_for_usage(first.url(""), ADMIN_KEY, 2)
            server.stop()
            server.start()
            for gw in (first, second):
                assert gw.app is not None
                wait_until(lambda g=gw: g.app[GATEWAY].redis_ready, 5)  # type: ignore[index]
            for gw in (first, second):
                gw.client().chat.completions.create(**chat_body())
            rows = wait_for_usage(first.url(""), ADMIN_KEY, 2)
            assert rows["requests"] >= 2  # before: the index was never rewritten, 0 rows all day


def test_dedup_markers_are_per_batch_and_expire_within_a_day(prefix: str, tmp_path: Path) -> None:
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        statuses = asyncio.run(burst([gw.url("/v2")], 40))
        assert statuses == [200] * 40
        wait_for_usage(gw.url(""), ADMIN_KEY, 40)
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        markers = list(client.scan_iter(match=f"{prefix}usage:*:s:*", count=1000))
        assert 1 <= len(markers) < 40  # one per batch and day/key/model, not one per request
        assert all(0 < int(client.ttl(m)) <= SEEN_TTL == 24 * 3600 for m in markers)
    finally:
        client.close()


def test_negative_or_absurd_usage_never_reaches_a_counter(prefix: str, tmp_path: Path) -> None:
    records = [UsageRecord("r1", today(), "team-a", "gpt-4o-mini", "openai", -1_000_000, 5, False),
               UsageRecord("r2", today(), "team-a", "gpt-4o-mini", "openai", 10**30, -3, False)]
    local = LocalMeter()
    for record in records:
        local.record(record)
    [row] = asyncio.run(local.query(today(), today(), None, None))
    assert row["prompt_tokens"] == 10**12 and row["completion_tokens"] == 5

    async def shared() -> list[dict[str, Any]]:
        table = parse(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl"), "t.yaml")
        state = RedisState(table.state)
        meter = RedisMeter(state, str(tmp_path / "spool.jsonl"))
        await state.start()
        meter.start()
        for record in records:
            meter.record(record)
        await meter.close()
        rows = await meter.query(today(), today(), None, None)
        await state.close()
        return rows

    [row] = asyncio.run(shared())
    assert row["prompt_tokens"] == 10**12 and row["completion_tokens"] == 5 and row["requests"] == 2


class _ClusterHiccup:
    """What redis-py's cluster client raises while a slot moves (seen during resharding)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.errors = [RuntimeError("Failed to execute command"), AttributeError("'NoneType' object has no "
                       "attribute 'execute_command'"), KeyError("127.0.0.1:7001"), IndexError("list index")]

    def __getattr__(self, name: str) -> Any:
        if self.errors and name in ("evalsha", "eval", "pipeline"):
            raise self.errors.pop(0)
        return getattr(self._client, name)


def test_any_exception_from_the_client_is_a_state_failure_not_a_500(
        prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"rpm": 1000, "tpm": 10**6})
    with Gateway(table) as gw:
        assert gw.app is not None
        gateway = gw.app[GATEWAY]
        wait_until(lambda: gateway.redis_ready, 5)
        state = gateway.limiter.state  # type: ignore[attr-defined]
        state.client = _ClusterHiccup(state.client)
        statuses = asyncio.run(burst([gw.url("/v2")], 12))
        assert statuses == [200] * 12
        wait_until(lambda: gateway.redis_ready, 5)
        assert wait_for_usage(gw.url(""), ADMIN_KEY, 12)["requests"] == 12
    causes = [fields.get("cause", "") for _, fields in _messages(caplog)]
    assert any(cause.startswith("unexpected RuntimeError") for cause in causes), causes


def test_a_failing_recovery_listener_leaves_no_unretrieved_task_exception(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        table = parse(state_table(SHARED_REDIS, "llmr-listener:", tmp_path / "spool.jsonl"), "t.yaml")
        state = RedisState(table.state)

        async def broken() -> None:
            raise RuntimeError("script load exploded")

        state.on_recovery(broken)
        await state.start()
        await asyncio.sleep(0.05)
        await state.close()

    caplog.set_level(logging.WARNING)
    asyncio.run(scenario())
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert any("RuntimeError" in str(getattr(r, "fields", {})) for r in caplog.records)


def test_usage_rows_visible(prefix: str, tmp_path: Path) -> None:
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        gw.client().chat.completions.create(**chat_body())
        wait_for_usage(gw.url(""), ADMIN_KEY, 1)
        assert [r["key"] for r in usage_rows(gw.url(""), ADMIN_KEY)] == ["team-a"]


def test_the_spool_depth_is_a_metric(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    table = state_table(server.url, "llmr-spool:", tmp_path / "spool.jsonl")
    with Gateway(table) as gw:
        for _ in range(3):
            gw.client().chat.completions.create(**chat_body())  # Redis not started: spooled
        wait_until(lambda: metrics.USAGE_SPOOL_RECORDS._value.get() == 3, 5)
        assert metrics.USAGE_SPOOL_BYTES._value.get() == sum(
            p.stat().st_size for p in tmp_path.glob("spool.jsonl*"))
        with server:
            assert wait_for_usage(gw.url(""), ADMIN_KEY, 3)["requests"] == 3
            wait_until(lambda: metrics.USAGE_SPOOL_RECORDS._value.get() == 0, 5)
            assert metrics.USAGE_SPOOL_BYTES._value.get() == 0
