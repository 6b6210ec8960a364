"""SIGTERM with streams running longer than `server.shutdown_grace`: a real
`llm-router serve` process stops within the grace (plus its bounded margin, not the
streams' length), ends each stream with an error event saying it is shutting down,
and meters what the cut streams used in Redis."""

from __future__ import annotations

import http.client
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from providers.simulators.common import SIMULATOR_STATE
from router.state.metering import today
from router.state.redis_meter import counters_key
from router.tokens import from_chars
from tests.ops.support import Simulators, free_port, serve_process, write_table
from tests.state.helpers import SHARED_REDIS, delete_prefix, new_prefix

KEY = "sk-shutdown-test"
GRACE = 2.0
CHUNK_SECONDS = 1.0
PROMPT = " ".join(f"word{i}" for i in range(20))  # the simulator echoes it: ~30 chunks, ~30 s a stream
STREAMS = 3


@pytest.fixture
def prefix() -> Iterator[str]:
    value = new_prefix()
    yield value
    delete_prefix(SHARED_REDIS, value)


def _routes(url: str, prefix: str, spool: Path) -> dict[str, Any]:
    return {
        "server": {"shutdown_grace": GRACE},
        "state": {"redis_url": SHARED_REDIS, "key_prefix": prefix, "spool_path": str(spool)},
        "providers": {"local": {"kind": "openai-compatible", "base_url": url}},
        "models": {"m1": {"targets": [{"provider": "local", "model": "upstream-m1"}]}},
        "keys": [{"name": "team-a", "key": KEY, "models": ["*"]}],
    }


class SlowStream(threading.Thread):
    """One streamed chat on its own connection, keeping every `data:` payload it gets."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.first_chunk = threading.Event()
        self.payloads: list[bytes] = []
        self.status = 0
        self.start()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = orjson.dumps({"model": "m1", "stream": True, "messages": [{"role": "user", "content": PROMPT}]})
        try:
            connection.request("POST", "/v1/chat/completions", body, {
                "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
            response = connection.getresponse()
            self.status = response.status
            for line in response:
                if line.startswith(b"data: "):
                    self.payloads.append(line[len(b"data: "):].strip())
                    self.first_chunk.set()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            self.first_chunk.set()
            connection.close()


@pytest.mark.slow
def test_sigterm_cuts_streams_at_the_grace_and_meters_what_they_used(tmp_path: Path, prefix: str) -> None:
    with Simulators({"openai-compatible"}) as sims:
        sims.runners[0].app[SIMULATOR_STATE].stream_delay = CHUNK_SECONDS
        spool = tmp_path / "spool.jsonl"
        config = write_table(tmp_path / "routes.yaml", _routes(sims.urls["openai-compatible"], prefix, spool))
        port, log = free_port(), tmp_path / "serve.log"
        with serve_process(config, port, log_path=log) as process:
            streams = [SlowStream(port) for _ in range(STREAMS)]
            for stream in streams:
                assert stream.first_chunk.wait(10)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(30)
            stopped_after = time.monotonic() - signalled
        for stream in streams:
            stream.join(10)
    assert exit_code == 0, log.read_text()
    # The streams had ~30 s to go; the process stopped at the grace and its margin.
    streamed_for = len(PROMPT.split()) * CHUNK_SECONDS
    assert stopped_after < streamed_for / 2, (stopped_after, log.read_text())
    completion = 0  # tokens estimated from the text each stream got, as the gateway estimates them
    for stream in streams:
        assert stream.status == 200
        last = orjson.loads(stream.payloads[-1])
        assert last["error"]["code"] == "shutting_down", stream.payloads[-3:]
        chunks = [orjson.loads(payload) for payload in stream.payloads[:-1]]
        text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
        assert text
        completion += from_chars(len(text))
    client = redis.Redis.from_url(SHARED_REDIS, decode_responses=True)
    counts = {k: int(v) for k, v in client.hgetall(counters_key(prefix, today(), "team-a", "m1")).items()}
    client.close()
    assert counts["requests"] == STREAMS and counts["errors"] == STREAMS, (counts, log.read_text())
    assert counts["prompt_tokens"] >= STREAMS * len(PROMPT.split())
    assert counts["completion_tokens"] == completion
    assert not spool.exists() or not spool.read_text().strip()
    print(f"exit {stopped_after:.2f}s after SIGTERM (grace {GRACE}s); usage of the cut streams: {counts}")
