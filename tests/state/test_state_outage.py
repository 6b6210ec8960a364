"""Redis unreachable: the gateway starts and serves, says it is degraded, limits follow
the configured policy, and it recovers when Redis answers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import openai
import pytest

from router import metrics
from router.gateway import GATEWAY
from tests.harness import ADMIN_KEY, KEY_A, KEY_B, Gateway
from tests.state.helpers import RedisServer, chat_body, free_port, get_json, state_table, wait_for_usage, wait_until


def _degraded() -> float:
    return float(metrics.STATE_DEGRADED._value.get())


def test_fail_open_serves_local_limits_divided_by_replicas(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    table = state_table(dead, "llmr-outage:", tmp_path / "spool.jsonl", key_limits={"rpm": 4}, expected_replicas=2)
    with Gateway(table) as gw:
        status, body = get_json(gw.url("/readyz"), KEY_A)
        assert status == 200 and body["state"] == "degraded"  # fail_open: serving, so ready
        assert _degraded() == 1
        client = gw.client()
        client.chat.completions.create(**chat_body())
        client.chat.completions.create(**chat_body())  # 4 / 2 replicas = 2 per replica
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(**chat_body())
    assert len(list(tmp_path.glob("spool.jsonl*"))) == 1  # the usage waits in the spool


def test_fail_closed_refuses_limited_requests_only(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    table = state_table(dead, "llmr-outage:", tmp_path / "spool.jsonl", key_limits={"rpm": 4},
                        on_failure="fail_closed")
    with Gateway(table) as gw:
        status, body = get_json(gw.url("/readyz"), KEY_A)
        assert status == 503 and body["error"]["code"] == "state_unavailable"
        with pytest.raises(openai.InternalServerError) as refused:
            gw.client().chat.completions.create(**chat_body())
        assert refused.value.status_code == 503
        assert refused.value.response.json()["error"]["code"] == "state_unavailable"
        # A key without limits needs no shared state to be admitted.
        gw.client(KEY_B).chat.completions.create(**chat_body(model="Llama-3.1-70B-Instruct"))


def test_recovers_when_redis_comes_up(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    table = state_table(server.url, "llmr-outage:", tmp_path / "spool.jsonl", key_limits={"rpm": 100})
    with Gateway(table) as gw:
        assert gw.app is not None
        gateway = gw.app[GATEWAY]
        assert not gateway.redis_ready
        gw.client().chat.completions.create(**chat_body())  # served while Redis is away
        with server:
            wait_until(lambda: gateway.redis_ready, 5)
            assert _degraded() == 0
            assert get_json(gw.url("/readyz"), KEY_A)[0] == 200
            wait_until(lambda: get_json(gw.url("/admin/usage"), ADMIN_KEY)[1]["data"] != [], 5)
            raw = gw.client().chat.completions.with_raw_response.create(**chat_body())
            assert raw.headers["x-ratelimit-limit-requests"] == "100"


def test_usage_that_neither_redis_nor_the_spool_takes_is_logged_whole(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "not-a-dir").write_text("")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with Gateway(state_table(dead, "llmr-outage:", tmp_path / "not-a-dir" / "spool.jsonl")) as gw:
        gw.client().chat.completions.create(**chat_body())
        wait_until(lambda: any("could not be spooled" in r.getMessage() for r in caplog.records), 5)
    logged = next(r for r in caplog.records if "could not be spooled" in r.getMessage())
    [record] = logged.fields["records"]  # type: ignore[attr-defined]
    assert record["key"] == "team-a" and record["model"] == "gpt-4o-mini" and record["prompt_tokens"] > 0


def test_a_hung_redis_delays_no_request_beyond_its_timeout(own_redis: RedisServer, tmp_path: Path) -> None:
    table = state_table(own_redis.url, "llmr-hung:", tmp_path / "spool.jsonl", key_limits={"rpm": 1000})
    assert own_redis.proc is not None
    with Gateway(table) as gw:
        assert gw.app is not None
        gateway = gw.app[GATEWAY]
        gw.client().chat.completions.create(**chat_body())
        own_redis.proc.send_signal(signal.SIGSTOP)  # alive to TCP, silent to every command
        try:
            slowest = 0.0
            for _ in range(8):
                started = time.monotonic()
                gw.client().chat.completions.create(**chat_body())  # fail_open: served all the same
                slowest = max(slowest, time.monotonic() - started)
            assert slowest < 0.2 * 4 + 0.5  # table's socket timeout 0.2 s, the admit bounded by four
            wait_until(lambda: not gateway.redis_ready, 5)
            assert _degraded() == 1
            started = time.monotonic()
            gw.client().chat.completions.create(**chat_body())
            assert time.monotonic() - started < 0.15  # breaker open: Redis is not even tried
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: gateway.redis_ready, 5)
        assert wait_for_usage(gw.url(""), ADMIN_KEY, 10)["requests"] == 10
