"""Usage metering in Redis: what clients saw is what the usage API says, exactly once,
through failures, disconnects and Redis restarts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from providers.base import Operation
from providers.simulators.common import Fault
from router.gateway import GATEWAY
from router.state.metering import UsageRecord, today
from router.state.redis_meter import RedisMeter
from router.tokens import estimate_prompt_tokens
from tests.harness import ADMIN_KEY, KEY_A, Gateway
from tests.state.helpers import (
    SHARED_REDIS,
    RedisServer,
    chat_body,
    get_json,
    state_table,
    usage_rows,
    usage_total,
    wait_for_usage,
)


def _meter(gw: Gateway) -> RedisMeter:
    assert gw.app is not None
    meter = gw.app[GATEWAY].meter
    assert isinstance(meter, RedisMeter)
    return meter


def _client_traffic(gw: Gateway) -> tuple[int, int, int, int]:
    """Plain, streamed and failed requests; what the clients saw: (requests, prompt, completion, errors)."""
    client = gw.client()
    prompt = completion = errors = requests = 0
    for _ in range(3):
        answer = client.chat.completions.create(**chat_body())
        assert answer.usage is not None
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
        requests += 1
    for _ in range(3):
        for chunk in client.chat.completions.create(**chat_body(stream=True)):
            if chunk.usage:
                prompt += chunk.usage.prompt_tokens
                completion += chunk.usage.completion_tokens
        requests += 1
    gw.sim("openai").faults.append(Fault(status=400))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**chat_body())
    requests += 1
    errors += 1
    return requests, prompt, completion, errors


def test_usage_api_equals_what_clients_saw(prefix: str, tmp_path: Path) -> None:
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        requests, prompt, completion, errors = _client_traffic(gw)
        totals = wait_for_usage(gw.url(""), ADMIN_KEY, requests)
        assert totals == {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion, "errors": errors}
        status, own = get_json(f"{gw.url('/v2')}/usage?from={today()}&to={today()}", KEY_A)
        assert status == 200 and own["object"] == "list"
        assert {row["key"] for row in own["data"]} == {"team-a"}
        assert sum(row["requests"] for row in own["data"]) == requests
        assert not (tmp_path / "spool.jsonl").exists()  # Redis took everything


def test_a_disconnected_stream_is_metered_with_what_was_produced(prefix: str, tmp_path: Path) -> None:
    body = chat_body(stream=True, max_tokens=200)
    body["messages"][0]["content"] = " ".join(["tide"] * 60)
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        gw.sim("openai").stream_delay = 0.02
        with httpx.Client(timeout=5) as http, http.stream(
                "POST", gw.url("/v2") + "/chat/completions", json=body,
                headers={"Authorization": f"Bearer {KEY_A}"}) as answer:
            data = (line for line in answer.iter_lines() if line.startswith("data: "))
            assert all(next(data) for _ in range(5))  # then hang up mid-stream
        totals = wait_for_usage(gw.url(""), ADMIN_KEY, 1)
    assert totals["requests"] == 1
    # Estimated: the prompt as the gateway estimates it, and the part of the answer that was produced.
    assert totals["prompt_tokens"] == estimate_prompt_tokens(Operation.CHAT, body)
    assert 0 < totals["completion_tokens"] < 200


def test_a_batch_written_twice_counts_once(prefix: str, tmp_path: Path) -> None:
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        batch = [UsageRecord(f"req-{i}", today(), "team-a", "gpt-4o", "azure", 10, 5, False) for i in range(3)]
        meter = _meter(gw)
        gw.run(meter.write(batch))
        gw.run(meter.write(batch))  # a flush retried after its reply was lost
        gw.run(meter.write(batch[:1]))
        totals = usage_total(gw.url(""), ADMIN_KEY)
    assert totals == {"requests": 3, "prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45,
                      "errors": 0}


def test_prompt_cache_reads_and_writes_are_counted(prefix: str, tmp_path: Path) -> None:
    with Gateway(state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl")) as gw:
        record = UsageRecord("req-cache", today(), "team-a", "claude", "anthropic", 1200, 5, False,
                             cached_tokens=1163, cache_write_tokens=30)
        gw.run(_meter(gw).write([record]))
        rows = [r for r in usage_rows(gw.url(""), ADMIN_KEY) if r["model"] == "claude"]
    assert [(r["prompt_tokens"], r["cached_tokens"], r["cache_write_tokens"]) for r in rows] == [(1200, 1163, 30)]


def test_redis_restart_loses_no_usage(own_redis: RedisServer, tmp_path: Path) -> None:
    table = state_table(own_redis.url, "llmr-restart:", tmp_path / "spool.jsonl", key_limits={"rpm": 1000})
    with Gateway(table) as gw:
        first = _client_traffic(gw)
        wait_for_usage(gw.url(""), ADMIN_KEY, first[0])
        own_redis.stop()
        second = _client_traffic(gw)  # served while Redis is down: fail_open limits, usage spooled
        status, ready = get_json(gw.url("/readyz"), KEY_A)
        assert status == 200 and ready["state"] == "degraded"  # fail_open: still serving
        assert gw.app is not None and not gw.app[GATEWAY].redis_ready
        status, _ = get_json(gw.url("/admin/usage"), ADMIN_KEY)
        assert status == 503  # usage is not made up while the shared state is away
        own_redis.start()
        expected = [a + b for a, b in zip(first, second, strict=True)]
        totals = wait_for_usage(gw.url(""), ADMIN_KEY, expected[0])
        assert get_json(gw.url("/readyz"), KEY_A)[0] == 200
    requests, prompt, completion, errors = expected
    assert totals == {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, "errors": errors}
    assert not list(tmp_path.glob("spool.jsonl*"))  # replayed and removed


def test_spool_survives_concurrent_writers_and_replays(tmp_path: Path) -> None:
    from router.state.spool import Spool

    spool = Spool(tmp_path / "spool.jsonl")
    written: list[str] = []
    replayed: list[str] = []

    def writer(n: int) -> None:
        for i in range(50):
            rid = f"w{n}-{i}"
            spool.append([UsageRecord(rid, "2026-01-01", "k", "m", "p", 1, 1, False)])
            written.append(rid)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        for claimed in spool.claim():
            with spool.replaying(claimed) as records:
                replayed.extend(r.request_id for r in records or [])
    for thread in threads:
        thread.join()
    for claimed in spool.claim():
        with spool.replaying(claimed) as records:
            replayed.extend(r.request_id for r in records or [])
    assert sorted(replayed) == sorted(written) and len(written) == 150
    assert not spool.pending()


def test_a_spool_left_by_an_earlier_process_is_replayed_at_start(prefix: str, tmp_path: Path) -> None:
    from router.state.spool import Spool

    spool = tmp_path / "spool.jsonl"
    Spool(spool).append([UsageRecord(f"left-{i}", today(), "team-a", "gpt-4o", "azure", 7, 3, i == 0)
                         for i in range(4)])
    with Gateway(state_table(SHARED_REDIS, prefix, spool)) as gw:
        totals = wait_for_usage(gw.url(""), ADMIN_KEY, 4)
    assert totals == {"requests": 4, "prompt_tokens": 28, "completion_tokens": 12, "total_tokens": 40, "errors": 1}
    assert not list(tmp_path.glob("spool.jsonl*"))
