"""Concurrency slots are leases renewed while their request lives: a live request keeps
its slot however long it runs, a replica killed with SIGKILL gives its slots back
within LEASE_MS, and Retry-After says when."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest
import redis

from providers.simulators.common import Fault
from router.state import redis_limits
from router.state.redis_limits import LEASE_MS, RENEW_MS, limit_key
from tests.harness import KEY_A, Gateway
from tests.state.helpers import SHARED_REDIS, chat_body, state_table, wait_until
from tests.state.processes import start_gateways, start_simulator, stop, write_routes


def _post(base: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY_A}"},
                      timeout=30)


def _slow_stream(base: str, first_chunk: threading.Event) -> None:
    body = chat_body(stream=True, max_tokens=64)
    try:
        with httpx.stream("POST", base + "/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {KEY_A}"}) as answer:
            for _ in answer.iter_lines():
                first_chunk.set()
    except httpx.HTTPError:
        pass  # the gateway was killed mid-stream


def test_a_live_request_keeps_its_slot_past_the_lease(prefix: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_limits, "LEASE_MS", 1000)
    monkeypatch.setattr(redis_limits, "RENEW_MS", 250)
    table = state_table(SHARED_REDIS, prefix, tmp_path / "spool.jsonl", key_limits={"concurrency": 1})
    with Gateway(table) as gw:
        gw.sim("openai").faults.append(Fault(delay_between_chunks=0.2))  # a stream of several seconds
        started = threading.Event()
        streaming = threading.Thread(target=_slow_stream, args=(gw.url("/v2"), started), daemon=True)
        streaming.start()
        assert started.wait(10)
        time.sleep(3.0)  # three leases long: only renewals keep the slot
        assert streaming.is_alive()
        refused = _post(gw.url("/v2"), chat_body())
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "1"  # the holder is alive: a slot frees when it ends
        streaming.join(60)
        assert _post(gw.url("/v2"), chat_body()).status_code == 200


@pytest.mark.slow
def test_a_killed_replica_gives_its_slot_back_within_the_lease(prefix: str, tmp_path: Path) -> None:
    simulator, url = start_simulator(tmp_path, stream_delay=1.0)  # a stream of about a minute
    routes = write_routes(tmp_path, url, SHARED_REDIS, prefix, rpm=0, limits={"concurrency": 1})
    gateways = start_gateways(routes, tmp_path, 2)
    (doomed, doomed_base), (_, survivor_base) = gateways
    client = redis.Redis.from_url(SHARED_REDIS)
    try:
        started = threading.Event()
        threading.Thread(target=_slow_stream, args=(doomed_base + "/v1", started), daemon=True).start()
        assert started.wait(15)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
        slots = limit_key(prefix, "key:team-a", "concurrency")
        [(_, expiry)] = client.zrange(slots, 0, -1, withscores=True)
        seconds, micros = client.time()
        held_ms = expiry - (seconds * 1000 + micros / 1000)
        assert 0 < held_ms <= LEASE_MS  # the dead replica's slot: free within one lease
        refused = _post(survivor_base + "/v1", chat_body())
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= LEASE_MS / 1000
        # admitted again once the dead replica's lease ran out (bounded by it, not by a threshold)
        wait_until(lambda: _post(survivor_base + "/v1", chat_body()).status_code == 200,
                   (LEASE_MS + 2 * RENEW_MS) / 1000, 0.5)
    finally:
        client.close()
        stop(*(process for process, _ in gateways), simulator)
