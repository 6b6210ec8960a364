"""Shared rate limits against the machine's Redis, through the real gateway."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest

from router.gateway import GATEWAY
from router.state.redis_limits import RedisLimiter
from tests.harness import Gateway
from tests.state.helpers import SHARED_REDIS, burst, chat_body, state_table


def test_rpm_is_exact_under_concurrency(prefix: str, tmp_path: Path) -> None:
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"rpm": 100})
    # The harness runs clients, simulators and gateway on one machine; a burst of 200 delays the event
    # loop by far more than a Redis round trip, so the timeout is generous here.
    table["state"]["socket_timeout"] = 1.0
    with Gateway(table) as gw:
        started = time.monotonic()
        statuses = asyncio.run(burst([gw.url("/v2")], 200))
        elapsed = time.monotonic() - started
    # The bucket refills continuously (100 a minute): a burst that took `elapsed` may see that much more.
    refill = int(elapsed * 100 / 60)
    assert 100 <= statuses.count(200) <= 100 + refill, (statuses.count(200), elapsed)
    assert statuses.count(429) == 200 - statuses.count(200)


def test_limited_and_admitted_answers_carry_openai_headers(prefix: str, tmp_path: Path) -> None:
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"rpm": 2, "tpm": 100000})
    with Gateway(table) as gw:
        client = gw.client()
        raw = client.chat.completions.with_raw_response.create(**chat_body())
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == "1"
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100000
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        client.chat.completions.create(**chat_body())
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(**chat_body())
    response = refused.value.response
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def _limiter(gw: Gateway) -> RedisLimiter:
    assert gw.app is not None
    limiter = gw.app[GATEWAY].limiter
    assert isinstance(limiter, RedisLimiter)
    return limiter


def test_reconciliation_refunds_unused_reservation(prefix: str, tmp_path: Path) -> None:
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"tpm": 10000})
    with Gateway(table) as gw:
        client = gw.client()
        first = client.chat.completions.with_raw_response.create(**chat_body(max_tokens=2000))
        used = first.parse().usage.total_tokens
        reserved = 10000 - int(first.headers["x-ratelimit-remaining-tokens"])
        assert reserved > 2000 > used
        gw.run(_limiter(gw).drain())
        second = client.chat.completions.with_raw_response.create(**chat_body(max_tokens=2000))
    left = int(second.headers["x-ratelimit-remaining-tokens"])
    # Without the refund: 10000 - 2 * reserved. With it: only what was used, plus a little refill.
    assert 10000 - used - reserved <= left <= 10000 - used - reserved + 10, (left, used, reserved)


def test_tpm_stops_a_streaming_client_within_one_reservation(prefix: str, tmp_path: Path) -> None:
    tpm = 6000
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"tpm": tpm})
    body = chat_body(stream=True, max_tokens=400)
    body["messages"][0]["content"] = " ".join(["waves"] * 300)  # the simulator echoes it: a long answer
    seen = 0
    reservation = 0
    with Gateway(table) as gw:
        client = gw.client()
        started = time.monotonic()
        for _ in range(40):
            try:
                raw = client.chat.completions.with_raw_response.create(**body)
            except openai.RateLimitError:
                break
            reservation = reservation or tpm - int(raw.headers["x-ratelimit-remaining-tokens"])
            for chunk in raw.parse():
                if chunk.usage:
                    seen += chunk.usage.total_tokens
            gw.run(_limiter(gw).drain())
        else:
            pytest.fail("the token limit never refused")
        refill = (time.monotonic() - started) * tpm / 60
    assert seen > 0 and reservation > 400
    # Refused before the used tokens passed the limit by more than one reservation.
    assert tpm - reservation <= seen <= tpm + reservation + refill, (seen, reservation, refill)
