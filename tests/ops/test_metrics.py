"""Metric values rise by exactly what a known sequence of requests causes, read from
/metrics with Prometheus' own text parser: in one process (the test harness), and
from a `llm-router serve --workers 2` subprocess, where one scrape covers both."""

from __future__ import annotations

import http.client as http_client
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from providers.simulators.common import SIMULATOR_STATE, Fault
from router.server import MIN_WORKER_LIFETIME
from tests.harness import KEY_A, Gateway, table_dict
from tests.ops.support import Simulators, delta, free_port, http, scrape, serve_process, value, write_table

KEY_LIMITED = "sk-team-limited-test"
KEYS = [*table_dict()["keys"], {"name": "team-limited", "key": KEY_LIMITED, "models": ["*"], "limits": {"rpm": 1}}]
MODEL = "gpt-4o-mini"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(table_dict(keys=KEYS)) as gateway:
        yield gateway


def test_a_known_sequence_moves_every_metric_by_exactly_its_share(gw: Gateway) -> None:
    metrics_url = gw.url("/metrics")
    before = scrape(metrics_url)
    client = gw.client()
    prompt = completion = 0
    for _ in range(2):
        usage = client.chat.completions.create(model=MODEL, messages=HELLO).usage
        assert usage is not None
        prompt, completion = prompt + usage.prompt_tokens, completion + usage.completion_tokens
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    streamed = [chunk.usage for chunk in stream if chunk.usage is not None]
    prompt, completion = prompt + streamed[0].prompt_tokens, completion + streamed[0].completion_tokens
    gw.sim("openai").faults.append(Fault(status=400))  # not retryable: one attempt, passed through
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model-7f3a", messages=HELLO)
    limited = gw.client(KEY_LIMITED)
    limited.chat.completions.create(model=MODEL, messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model=MODEL, messages=HELLO)
    after = scrape(metrics_url)

    def moved(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    ok = {"endpoint": "/v2", "model": MODEL, "provider": "openai", "status": "200"}
    assert moved("llm_router_requests_total", key="team-a", **ok) == 3
    assert moved("llm_router_requests_total", key="team-a", endpoint="/v2", model=MODEL, status="400") == 1
    # An id the table does not have is counted under one label value, not its own series.
    assert moved("llm_router_requests_total", key="team-a", model="unknown", provider="none", status="404") == 1
    assert value(after, "llm_router_requests_total", model="no-such-model-7f3a") == 0
    assert moved("llm_router_requests_total", key="team-limited", **ok) == 1
    assert moved("llm_router_requests_total", key="team-limited", model=MODEL, provider="none", status="429") == 1
    assert moved("llm_router_requests_total") == 7
    assert moved("llm_router_rate_limited_total", key="team-limited", model=MODEL, limit="rpm") == 1
    assert moved("llm_router_rate_limited_total") == 1
    assert moved("llm_router_upstream_errors_total", provider="openai", model=MODEL, status="400") == 1
    assert moved("llm_router_upstream_errors_total") == 1
    assert moved("llm_router_tokens_total", key="team-a", model=MODEL, type="prompt") == prompt
    assert moved("llm_router_tokens_total", key="team-a", model=MODEL, type="completion") == completion
    # Requests that reached an upstream are timed: 3 + the 400 + the limited key's success.
    assert moved("llm_router_request_duration_seconds_count", model=MODEL, provider="openai") == 5
    assert moved("llm_router_overhead_seconds_count") == 5
    assert moved("llm_router_time_to_first_token_seconds_count", model=MODEL, provider="openai") == 1
    assert value(after, "llm_router_inflight_requests") == 0  # the scrape is not a client request


def test_probes_and_scrapes_are_not_in_flight_requests(gw: Gateway) -> None:
    for path in ("/healthz", "/readyz"):
        assert http("GET", gw.url(path))[0] == 200
    assert value(scrape(gw.url("/metrics")), "llm_router_inflight_requests") == 0


def test_a_client_leaving_a_stream_records_the_gateway_time_not_the_stream_time(gw: Gateway) -> None:
    """The stream is held open for `held` seconds; the gateway's own share is far less."""
    held = 1.0
    before = scrape(gw.url("/metrics"))
    release = gw.sim("openai").hold_after_first_chunk = threading.Event()
    connection = http_client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    try:
        connection.request("POST", "/v2/chat/completions", orjson.dumps(
            {"model": MODEL, "messages": HELLO, "stream": True}),
            {"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200 and response.readline().startswith(b"data: ")
        time.sleep(held)
    finally:
        connection.close()  # the client leaves mid-stream
    release.set()
    gw.sim("openai").hold_after_first_chunk = None
    deadline = time.monotonic() + 10
    while delta(before, after := scrape(gw.url("/metrics")), "llm_router_requests_total", status="499") < 1:
        assert time.monotonic() < deadline, "the closed stream was never counted"
        time.sleep(0.05)
    assert delta(before, after, "llm_router_request_duration_seconds_sum") >= held
    assert delta(before, after, "llm_router_overhead_seconds_count") == 1
    assert delta(before, after, "llm_router_overhead_seconds_sum") < held


def test_series_that_alerts_compute_rates_of_exist_at_zero_from_the_start(gw: Gateway) -> None:
    samples = scrape(gw.url("/metrics"))
    for result in ("success", "failure"):
        assert ("llm_router_config_reloads_total", frozenset({("result", result)})) in samples
    target = frozenset({("provider", "openai"), ("model", MODEL)})
    for name in ("llm_router_retries_total", "llm_router_cooldowns_total", "llm_router_targets_cooling_down"):
        assert (name, target) in samples, name
    assert ("llm_router_state_degraded", frozenset()) in samples
    assert gw.table is not None
    version = gw.table.version
    assert samples[("llm_router_config_info", frozenset({("version", version)}))] == 1


def _routes(url: str) -> dict[str, Any]:
    return {
        "admin": {"key": "sk-admin-workers-test"},
        "providers": {"local": {"kind": "openai-compatible", "base_url": url}},
        "models": {"m1": {"targets": [{"provider": "local", "model": "upstream-m1"}]}},
        "keys": [{"name": "team-a", "key": "sk-workers-a", "models": ["*"]},
                 {"name": "team-limited", "key": "sk-workers-limited", "models": ["*"], "limits": {"rpm": 1}}],
    }


def _chat(port: int, key: str, model: str = "m1") -> tuple[int, dict[str, Any]]:
    body = orjson.dumps({"model": model, "messages": HELLO})
    status, _, raw = http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body,
                          {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return status, orjson.loads(raw)


def _wait_for_lines(log: Path, pattern: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, log.read_text())) < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines matching {pattern}:\n{log.read_text()}"
        time.sleep(0.1)


def test_two_workers_are_counted_as_one_instance_on_the_metrics_port(tmp_path: Path) -> None:
    with Simulators({"openai-compatible"}) as sims:
        config = write_table(tmp_path / "routes.yaml", _routes(sims.urls["openai-compatible"]))
        port, metrics_port = free_port(), free_port()
        log = tmp_path / "serve.log"
        with serve_process(config, port, "--workers", "2", "--metrics-port", str(metrics_port), log_path=log):
            _wait_for_lines(log, r'"message":"serving"', 2)
            assert http("GET", f"http://127.0.0.1:{port}/metrics")[0] == 404  # not on the client port
            before = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            prompt = completion = 0
            for _ in range(24):  # a new connection each: the kernel spreads them over both workers
                status, body = _chat(port, "sk-workers-a")
                assert status == 200
                prompt += body["usage"]["prompt_tokens"]
                completion += body["usage"]["completion_tokens"]
            # Without Redis each worker has its own limiter: one success per worker at most.
            limited = [_chat(port, "sk-workers-limited")[0] for _ in range(6)]
            assert set(limited) <= {200, 429} and limited.count(429) >= 4
            after = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            pids = set(re.findall(r'"logger":"llm_router.access","message":"request","pid":(\d+)', log.read_text()))
            assert len(pids) == 2, "both workers should have answered requests"

            def moved(name: str, **labels: str) -> float:
                return delta(before, after, name, **labels)

            ok = {"endpoint": "/v1", "model": "m1", "provider": "local", "status": "200"}
            assert moved("llm_router_requests_total", key="team-a", **ok) == 24
            assert moved("llm_router_requests_total", key="team-limited", **ok) == limited.count(200)
            assert moved("llm_router_requests_total", key="team-limited", status="429") == limited.count(429)
            assert moved("llm_router_rate_limited_total", key="team-limited", model="m1",
                         limit="rpm") == limited.count(429)
            assert moved("llm_router_tokens_total", key="team-a", type="prompt") == prompt
            assert moved("llm_router_tokens_total", key="team-a", type="completion") == completion
            assert moved("llm_router_request_duration_seconds_count", model="m1") == 24 + limited.count(200)
            assert value(after, "llm_router_inflight_requests") == 0  # summed over the live workers
            assert value(after, "llm_router_config_reloads_total", result="failure") == 0
            assert len([s for s in after if s[0] == "llm_router_config_info"]) == 1


def test_a_killed_worker_leaves_the_in_flight_sum_and_is_replaced(tmp_path: Path) -> None:
    with Simulators({"openai-compatible"}) as sims:
        state = sims.runners[0].app[SIMULATOR_STATE]
        config = write_table(tmp_path / "routes.yaml", _routes(sims.urls["openai-compatible"]))
        port, log = free_port(), tmp_path / "serve.log"
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        with serve_process(config, port, "--workers", "2", log_path=log):
            _wait_for_lines(log, r'"message":"serving"', 2)
            workers = [int(pid) for pid in re.findall(r'"message":"serving","pid":(\d+)', log.read_text())]
            time.sleep(MIN_WORKER_LIFETIME)  # a worker dying younger would not be replaced
            release = state.hold_after_first_chunk = threading.Event()
            streams = [HeldStream(port) for _ in range(6)]  # a connection each: both workers get some
            for stream in streams:
                assert stream.first_chunk.wait(5)
            assert value(scrape(metrics_url), "llm_router_inflight_requests") == 6  # the streams, not this scrape
            os.kill(workers[0], signal.SIGKILL)
            release.set()
            for stream in streams:
                stream.join(10)
            state.hold_after_first_chunk = None
            _wait_for_lines(log, r'"message":"worker exited"', 1)
            _wait_for_lines(log, r'"message":"serving"', 3)  # the replacement
            # The dead worker's in-flight streams no longer count.
            assert value(scrape(metrics_url), "llm_router_inflight_requests") == 0
            finished = sum(stream.finished for stream in streams)
            samples = scrape(metrics_url)
            assert value(samples, "llm_router_requests_total", key="team-a", status="200") == finished
            assert all(_chat(port, "sk-workers-a")[0] == 200 for _ in range(6))


class HeldStream(threading.Thread):
    """A streamed chat on its own connection; `first_chunk` is set once its first chunk arrived."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.first_chunk = threading.Event()
        self.finished = False
        self.start()

    def run(self) -> None:
        client = openai.OpenAI(api_key="sk-workers-a", base_url=f"http://127.0.0.1:{self.port}/v1", max_retries=0)
        try:
            for _ in client.chat.completions.create(model="m1", messages=HELLO, stream=True):
                self.first_chunk.set()
            self.finished = True
        except openai.APIError:
            self.first_chunk.set()  # its worker was killed under it
        finally:
            client.close()
