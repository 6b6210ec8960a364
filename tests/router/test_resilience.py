"""Retries, failover, fallbacks, cooldowns, timeouts and client disconnects, end to end:
the real app in front of the simulators with scripted faults, the stock openai client."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest
import redis.asyncio as aioredis

from providers.simulators.common import Fault, SimulatorState
from router import metrics
from router.config.schema import replace_providers
from router.gateway import GATEWAY
from router.state.metering import today
from tests.harness import ADMIN_KEY, KEY_A, Gateway, table_dict

FAST = {"connect": 0.5, "first_byte": 0.4, "idle": 0.3, "total": 10}
AZURE_PATH = "/openai/deployments/"  # the azure target's requests; the openai target's are /v1/...
OPENAI_PATH = "/v1/chat/completions"


def resilience_table(**overrides: Any) -> dict[str, Any]:
    table = table_dict()
    table["providers"]["openai"].update(timeouts=FAST, max_retries=1,
                                        cooldown={"failures": 2, "window": 30, "duration": 30})
    table["providers"]["azure"].update(timeouts=FAST, max_retries=1,
                                       cooldown={"failures": 2, "window": 30, "duration": 0.6})
    table["providers"]["anthropic"].update(timeouts=FAST, max_retries=1)
    table["providers"]["narrow"] = {"kind": "openai-compatible", "base_url": "http://placeholder/v1",
                                    "max_concurrency": 1, "max_queue": 1, "timeouts": FAST}
    meta = {"max_sequence_length": 128000, "max_output_length": 1024}
    table["models"].update({
        "solo": {"meta_data": meta, "deadline": 3, "targets": [{"provider": "openai", "model": "solo-upstream"}]},
        # azure first almost always (weights), the openai target second.
        "pair": {"meta_data": meta, "deadline": 3, "fallbacks": ["claude-3-5-sonnet"],
                 "targets": [{"provider": "azure", "model": "pair-deployment", "weight": 1_000_000},
                             {"provider": "openai", "model": "pair-upstream", "weight": 1}]},
        "narrow-model": {"meta_data": meta, "deadline": 1,
                         "targets": [{"provider": "narrow", "model": "narrow-upstream"}]},
    })
    table.update(overrides)
    return table


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(resilience_table()) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def clean_slate(gw: Gateway) -> Iterator[None]:
    """Each test starts with no cooldowns (they are the gateway's memory of earlier failures)."""
    gw.app[GATEWAY].guards = None  # type: ignore[index]
    yield
    for kind in ("openai", "anthropic", "gemini"):
        gw.sim(kind).faults.clear()
        gw.sim(kind).stream_delay = 0.0


def hits(sim: SimulatorState, path: str) -> int:
    return sum(1 for r in sim.received if path in r.path)


def chat(gw: Gateway, model: str, **kwargs: Any) -> Any:
    return gw.client().chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], **kwargs)


def counter(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


def test_a_429_then_success_is_invisible_to_the_client(gw: Gateway) -> None:
    sim = gw.sim("openai")
    before, retries = hits(sim, OPENAI_PATH), counter(metrics.RETRIES, "openai", "solo")
    sim.faults.append(Fault(status=429, path=OPENAI_PATH))
    raw = chat(gw, "solo")
    assert raw.http_response.status_code == 200
    assert raw.parse().model == "solo"
    assert hits(sim, OPENAI_PATH) - before == 2
    assert counter(metrics.RETRIES, "openai", "solo") - retries == 1


def test_retry_after_is_honoured(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.append(Fault(status=503, retry_after=0.8, path=OPENAI_PATH))
    started = time.monotonic()
    raw = chat(gw, "solo")
    elapsed = time.monotonic() - started
    assert raw.http_response.status_code == 200
    assert 0.8 <= elapsed < 1.8


def test_retry_after_beyond_the_deadline_is_not_waited_for(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.append(Fault(status=429, retry_after=30, path=OPENAI_PATH))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gw, "solo")
    assert time.monotonic() - started < 1.0
    assert caught.value.response.headers["retry-after"] == "30"
    assert caught.value.body["message"].startswith("The upstream providers of model 'solo' failed")  # type: ignore[index]


def test_a_non_retryable_error_passes_through_without_retry(gw: Gateway) -> None:
    sim = gw.sim("openai")
    before = hits(sim, OPENAI_PATH)
    sim.faults.append(Fault(status=400, path=OPENAI_PATH))
    with pytest.raises(openai.BadRequestError):
        chat(gw, "solo")
    assert hits(sim, OPENAI_PATH) - before == 1


def test_anthropic_529_is_retried(gw: Gateway) -> None:
    sim = gw.sim("anthropic")
    before = len(sim.received)
    sim.faults.append(Fault(status=529))
    raw = chat(gw, "claude-3-5-sonnet")
    assert raw.http_response.status_code == 200
    assert len(sim.received) - before == 2


@pytest.mark.parametrize(("kind", "model", "status"), [("anthropic", "claude-3-5-sonnet", 529),
                                                        ("anthropic", "claude-3-5-sonnet", 500),
                                                        ("gemini", "gemini-1.5-pro", 503)])
def test_an_error_carried_by_the_first_stream_event_is_retried_like_the_same_http_status(
        gw: Gateway, kind: str, model: str, status: int) -> None:
    """An `overloaded_error`/`api_error` event (Anthropic) or an error chunk (Gemini) as the
    first event of a 200 stream is the same condition as the HTTP status: retried, unseen."""
    sim = gw.sim(kind)
    before = len(sim.received)
    sim.faults.append(Fault(status=status, drop_after_chunks=0))
    stream = gw.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    assert len(sim.received) - before == 2


def test_a_gemini_stream_without_usage_metadata_gets_exactly_one_estimated_usage_chunk(gw: Gateway) -> None:
    gw.sim("gemini").faults.append(Fault(no_usage=True))
    stream = gw.client().chat.completions.create(
        model="gemini-1.5-pro", messages=[{"role": "user", "content": "Say hello"}], stream=True,
        stream_options={"include_usage": True})
    usages = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert len(usages) == 1
    assert usages[0].prompt_tokens > 0 and usages[0].completion_tokens > 0


def test_a_dead_target_is_failed_over_then_cooled_down_until_the_probe(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(status=503, path=AZURE_PATH) for _ in range(50))
    azure_before, cooldowns = hits(sim, AZURE_PATH), counter(metrics.COOLDOWNS, "azure", "pair")
    raw = chat(gw, "pair")
    assert raw.http_response.status_code == 200
    assert raw.headers["x-llm-router-provider"] == "openai"
    assert raw.parse().model == "pair"
    assert hits(sim, AZURE_PATH) - azure_before == 2  # max_retries 1: two attempts, then cooldown (failures: 2)
    assert counter(metrics.COOLDOWNS, "azure", "pair") - cooldowns == 1
    assert metrics.COOLING_DOWN.labels("azure", "pair")._value.get() == 1
    for _ in range(3):
        assert chat(gw, "pair").headers["x-llm-router-provider"] == "openai"
    assert hits(sim, AZURE_PATH) - azure_before == 2  # not touched while cooling down
    time.sleep(0.7)  # the cooldown (0.6 s) is over: the next request probes azure
    sim.faults.clear()
    raw = chat(gw, "pair")
    assert raw.headers["x-llm-router-provider"] == "azure"
    assert hits(sim, AZURE_PATH) - azure_before == 3
    assert metrics.COOLING_DOWN.labels("azure", "pair")._value.get() == 0


def test_a_failed_probe_takes_the_target_out_again_at_once(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(status=503, path=AZURE_PATH) for _ in range(50))
    chat(gw, "pair")  # two failures: cooling down for 0.6 s
    time.sleep(0.7)
    before = hits(sim, AZURE_PATH)
    assert chat(gw, "pair").headers["x-llm-router-provider"] == "openai"
    assert hits(sim, AZURE_PATH) - before == 1  # the probe: one attempt, no retry
    assert chat(gw, "pair").headers["x-llm-router-provider"] == "openai"
    assert hits(sim, AZURE_PATH) - before == 1  # out again without waiting for two more failures
    time.sleep(0.7)
    sim.faults.clear()
    assert chat(gw, "pair").headers["x-llm-router-provider"] == "azure"


def test_all_targets_dead_gives_the_fallback_model(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(status=502, path=p) for p in (AZURE_PATH, OPENAI_PATH) for _ in range(20))
    raw = chat(gw, "pair")
    assert raw.http_response.status_code == 200
    assert raw.parse().model == "claude-3-5-sonnet"
    assert raw.headers["x-llm-router-provider"] == "anthropic"
    assert raw.headers["x-llm-router-model"] == "claude-3-5-sonnet"


def test_everything_dead_is_a_clear_5xx_within_the_deadline(gw: Gateway) -> None:
    gw.sim("openai").faults.extend(Fault(status=503, path=p) for p in (AZURE_PATH, OPENAI_PATH) for _ in range(20))
    gw.sim("anthropic").faults.extend(Fault(status=500) for _ in range(20))
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        chat(gw, "pair")
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1  # the model's deadline, and then some
    assert caught.value.status_code == 500  # the last failure's status: the fallback's 500
    body = caught.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "The upstream providers of model 'pair' failed" in body["error"]["message"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_provider_that_refuses_connections_fails_within_the_deadline(gw: Gateway) -> None:
    gateway = gw.app[GATEWAY]  # type: ignore[index]
    table = gateway.runtime.table
    dead = dataclasses.replace(table.providers["openai"], settings=dataclasses.replace(
        table.providers["openai"].settings, base_url=f"http://127.0.0.1:{_closed_port()}/v1"))
    swapped = replace_providers(table, {**table.providers, "openai": dead})

    async def swap(new: Any) -> None:
        gateway.swap(new)

    gw.run(swap(swapped))
    try:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as caught:
            chat(gw, "solo")
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
        assert time.monotonic() - started < 3 + 1
    finally:
        gw.run(swap(table))


def test_a_timeout_before_the_first_byte_is_retried(gw: Gateway) -> None:
    sim = gw.sim("openai")
    before = hits(sim, OPENAI_PATH)
    sim.faults.append(Fault(delay_first_byte=1.5, path=OPENAI_PATH))
    started = time.monotonic()
    stream = gw.client().chat.completions.create(model="solo", messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.startswith("This is a simulated answer")
    assert hits(sim, OPENAI_PATH) - before == 2
    assert time.monotonic() - started < 1.5  # the first-byte timeout (0.4 s) cut the slow attempt


def test_a_stream_cut_midway_ends_with_an_error_event(gw: Gateway) -> None:
    sim = gw.sim("openai")
    before = hits(sim, OPENAI_PATH)
    sim.faults.append(Fault(drop_after_chunks=3, path=OPENAI_PATH))
    stream = gw.client().chat.completions.create(model="solo", messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True)
    pieces: list[str] = []
    with pytest.raises(openai.APIError, match="lost mid-stream"):
        for chunk in stream:
            pieces.append(chunk.choices[0].delta.content or "")
    assert pieces  # the first chunks arrived before the error
    assert hits(sim, OPENAI_PATH) - before == 1  # nothing retried once bytes went to the client


def test_an_idle_stream_times_out_with_an_error_event(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.append(Fault(delay_between_chunks=2.0, path=OPENAI_PATH))
    started = time.monotonic()
    stream = gw.client().chat.completions.create(model="solo", messages=[{"role": "user", "content": "Hi"}],
                                                 stream=True)
    with pytest.raises(openai.APIError, match="stopped sending"):
        for _ in stream:
            pass
    assert time.monotonic() - started < 1.5  # idle timeout 0.3 s, not the upstream's 2 s pause


async def _usage_rows(gw: Gateway, model: str) -> list[dict[str, Any]]:
    params = {"from": today(), "to": today(), "model": model}
    async with aiohttp.ClientSession() as http, \
            http.get(gw.url("/admin/usage"), params=params, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as answer:
        answer_body = await answer.json()
        assert answer.status == 200, answer_body
        rows: list[dict[str, Any]] = answer_body["data"]
        return rows


async def test_a_client_disconnect_cancels_the_upstream_and_is_metered(gw: Gateway) -> None:
    sim = gw.sim("openai")
    disconnects = sim.disconnects
    sim.faults.append(Fault(delay_between_chunks=0.05, endless=True, path=OPENAI_PATH))
    body = {"model": "solo", "stream": True, "messages": [{"role": "user", "content": "Tell me more"}]}
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.post(gw.url() + "/chat/completions", json=body, headers=headers) as response:
        assert response.status == 200
        events = 0
        async for line in response.content:
            events += line.startswith(b"data: ")
            if events == 5:
                break
    # leaving the block with the body unread closes the connection
    deadline = time.monotonic() + 3
    while sim.disconnects == disconnects and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert sim.disconnects == disconnects + 1  # the simulator saw its connection closed
    rows = await _usage_rows(gw, "solo")
    while not (rows and rows[0]["completion_tokens"] > 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        rows = await _usage_rows(gw, "solo")
    assert rows and rows[0]["completion_tokens"] > 0  # what was streamed until the disconnect is metered


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.post(url, json=body, headers={"Authorization": f"Bearer {KEY_A}"}) as answer:
        return answer.status, await answer.json(), time.monotonic() - started


async def test_backpressure_answers_503_beyond_the_queue_and_spares_other_providers(gw: Gateway) -> None:
    sim = gw.sim("openai")  # openai-compatible providers ("narrow", "local") are served by this simulator too
    sim.faults.append(Fault(delay_between_chunks=0.1, endless=True, path=OPENAI_PATH))
    body = {"model": "narrow-model", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    url = gw.url() + "/chat/completions"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            http.post(url, json=body, headers={"Authorization": f"Bearer {KEY_A}"}) as holding:
        assert holding.status == 200  # holds the provider's one slot
        queued = asyncio.create_task(_post(url, body))  # waits in the queue of one ...
        await asyncio.sleep(0.2)
        status, refused, elapsed = await _post(url, body)  # ... so this one finds slot and queue full
        assert (status, refused["error"]["code"]) == (503, "provider_overloaded")
        assert elapsed < 0.5
        status, refused, elapsed = await queued  # the queued one waited until its deadline (1 s)
        assert (status, refused["error"]["code"]) == (503, "provider_overloaded")
        assert 0.7 < elapsed < 1 + 1
        other = {"model": "Llama-3.1-70B-Instruct", "messages": [{"role": "user", "content": "Hi"}]}
        status, _, elapsed = await _post(url, other)  # meanwhile, other providers answer as usual
        assert status == 200 and elapsed < 0.5


def test_a_cooldown_set_by_one_gateway_is_honoured_by_another_sharing_redis() -> None:
    prefix = f"llmr-test-{uuid.uuid4().hex[:8]}:"
    table = resilience_table(state={"redis_url": "redis://127.0.0.1:6379/0", "key_prefix": prefix})
    table["providers"]["azure"]["cooldown"] = {"failures": 2, "window": 30, "duration": 30}
    try:
        with Gateway(table) as first, Gateway(table) as second:
            first.sim("openai").faults.extend(Fault(status=503, path=AZURE_PATH) for _ in range(10))
            assert chat(first, "pair").headers["x-llm-router-provider"] == "openai"
            assert hits(first.sim("openai"), AZURE_PATH) == 2  # failed twice: cooling down, in Redis
            for _ in range(3):  # the second gateway's azure is healthy, but it keeps away from it
                assert chat(second, "pair").headers["x-llm-router-provider"] == "openai"
            assert hits(second.sim("openai"), AZURE_PATH) == 0
    finally:
        asyncio.run(_delete_keys(prefix))


async def _delete_keys(prefix: str) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def test_a_timeout_on_every_attempt_answers_504_in_openais_shape(gw: Gateway) -> None:
    gw.sim("openai").faults.extend(Fault(delay_first_byte=1.0, path=OPENAI_PATH) for _ in range(2))
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        chat(gw, "solo")
    assert time.monotonic() - started < 0.4 * 2 + 1  # two first-byte timeouts and one backoff
    assert caught.value.status_code == 504
    error = caught.value.response.json()["error"]
    assert (error["type"], error["code"]) == ("timeout", "upstream_timeout")


def test_when_every_target_is_cooling_down_each_request_still_tries_once(gw: Gateway) -> None:
    sim = gw.sim("openai")
    sim.faults.extend(Fault(status=503, path=OPENAI_PATH) for _ in range(3))
    with pytest.raises(openai.InternalServerError):
        chat(gw, "solo")  # two failures: solo's only target is cooling down (for 30 s)
    before = hits(sim, OPENAI_PATH)
    with pytest.raises(openai.InternalServerError):
        chat(gw, "solo")
    assert hits(sim, OPENAI_PATH) - before == 1  # one attempt, no retries, rather than no answer at all
    raw = chat(gw, "solo")  # the provider is back: that one attempt serves and closes the circuit
    assert raw.http_response.status_code == 200
    assert metrics.COOLING_DOWN.labels("openai", "solo")._value.get() == 0
