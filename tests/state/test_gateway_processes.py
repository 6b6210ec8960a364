"""Several `llm-router serve` processes sharing one Redis: limits hold across them, and
SIGTERM under load loses no usage."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.harness import ADMIN_KEY, KEY_A
from tests.state.helpers import SHARED_REDIS, burst, chat_body, usage_total
from tests.state.processes import start_gateways, start_simulator, stop, write_routes


@pytest.fixture
def simulator(tmp_path: Path) -> Any:
    process, url = start_simulator(tmp_path, stream_delay=0.005)
    yield url
    stop(process)


def test_rpm_is_exact_across_three_gateway_processes(simulator: str, prefix: str, tmp_path: Path) -> None:
    routes = write_routes(tmp_path, simulator, SHARED_REDIS, prefix, rpm=100)
    gateways = start_gateways(routes, tmp_path, 3)
    try:
        started = time.monotonic()
        statuses = asyncio.run(burst([base + "/v1" for _, base in gateways], 200))
        elapsed = time.monotonic() - started
    finally:
        stop(*(process for process, _ in gateways))
    logs = "".join(p.read_text() for p in tmp_path.glob("gateway-*.log"))
    assert "unreachable" not in logs  # every admission was decided by Redis, none by a local fallback
    refill = int(elapsed * 100 / 60)  # the bucket refills continuously, 100 a minute
    assert 100 <= statuses.count(200) <= 100 + refill, (statuses.count(200), elapsed)
    assert statuses.count(429) == 200 - statuses.count(200)


async def _stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt, completion) tokens the client saw, or None when the gateway never answered."""
    try:
        async with session.post(url + "/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {KEY_A}"}) as answer:
            assert answer.status == 200, await answer.text()
            usage = None
            async for line in answer.content:
                if line.startswith(b"data: {"):
                    chunk = orjson.loads(line[6:])
                    usage = chunk.get("usage") or usage
            assert usage is not None, "an answered stream ends with its usage"
            return usage["prompt_tokens"], usage["completion_tokens"]
    except aiohttp.ClientConnectionError:
        return None  # refused: the gateway had stopped accepting


async def _load_then_sigterm(base: str, process: subprocess.Popen[bytes]) -> list[tuple[int, int] | None]:
    body = chat_body(stream=True, max_tokens=120)
    body["messages"][0]["content"] = " ".join(["harbour"] * 100)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        first = [asyncio.create_task(_stream(session, base + "/v1", body)) for _ in range(30)]
        await asyncio.sleep(0.3)  # the streams are under way (the simulator paces them)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        late = [asyncio.create_task(_stream(session, base + "/v1", body)) for _ in range(10)]
        return list(await asyncio.gather(*first, *late))


def test_sigterm_during_load_loses_no_usage(simulator: str, prefix: str, tmp_path: Path) -> None:
    routes = write_routes(tmp_path, simulator, SHARED_REDIS, prefix, rpm=10000)
    [(process, base)] = start_gateways(routes, tmp_path)
    try:
        seen = asyncio.run(_load_then_sigterm(base, process))
        assert process.wait(20) == 0
    finally:
        stop(process)
    answered = [s for s in seen if s is not None]
    assert len(answered) >= 30  # every stream in flight at SIGTERM finished
    [(reader, reader_base)] = start_gateways(routes, tmp_path)  # a fresh gateway reads what the first one wrote
    try:
        totals = usage_total(reader_base, ADMIN_KEY)
    finally:
        stop(reader)
    prompt = sum(p for p, _ in answered)
    completion = sum(c for _, c in answered)
    assert totals == {"requests": len(answered), "prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion, "errors": 0}
