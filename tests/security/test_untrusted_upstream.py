"""Upstream answers are not trusted: garbage, an answer that never ends, a stream that
never ends and an oversized body each become an OpenAI-shaped error (502/504), in
bounded time, while other clients keep being served."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from providers.base import UpstreamError
from providers.simulators.common import Fault
from router.upstream import call as upstream
from tests.harness import KEY_A, Gateway, table_dict
from tests.security.http import Answer, call

QUICK = {"connect": 1, "first_byte": 1, "idle": 0.5, "total": 1}


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    table = table_dict()
    for provider in table["providers"].values():
        provider["timeouts"] = QUICK
    with Gateway(table) as gateway:
        yield gateway


def chat(gw: Gateway, model: str, stream: bool = False) -> Answer:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    return call(gw, "POST", "/v2/chat/completions", KEY_A, data=orjson.dumps(body),
                headers={"Content-Type": "application/json"}, timeout=15)


def assert_openai_error(payload: Any, *statuses: int) -> None:
    error = payload["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert {"type", "param", "code"} <= set(error)


SIMULATOR_OF = {"Llama-3.1-70B-Instruct": "openai-compatible", "claude-3-5-sonnet": "anthropic",
                "gemini-1.5-pro": "gemini"}


GARBAGE_CASES = [(model, stream) for model in SIMULATOR_OF for stream in (False, True)]


@pytest.mark.parametrize(("model", "stream"), GARBAGE_CASES)
def test_a_garbage_answer_is_a_502(gw: Gateway, model: str, stream: bool) -> None:
    gw.sim(SIMULATOR_OF[model]).faults.append(Fault(garbage=True))
    answer = chat(gw, model, stream)
    if answer.status == 200:  # a stream may already have begun: then it ends with an error event
        events = [line[6:] for line in answer.text.split("\n") if line.startswith("data: ")]
        assert_openai_error(orjson.loads(events[-1]))
    else:
        assert answer.status == 502, answer.text
        assert_openai_error(answer.json())


# The OpenAI simulator's endless fault is a stream that never ends; the others also send a plain answer that never
# ends (whitespace, forever).
ENDLESS_CASES = [(model, stream) for model in SIMULATOR_OF for stream in (False, True)
                 if stream or model != "Llama-3.1-70B-Instruct"]


@pytest.mark.parametrize(("model", "stream"), ENDLESS_CASES)
def test_an_answer_that_never_ends_is_cut_off_while_others_are_served(gw: Gateway, model: str,
                                                                       stream: bool) -> None:
    faults = gw.sim(SIMULATOR_OF[model]).faults
    faults.extend(Fault(endless=True) for _ in range(5))  # every retry meets it too
    with ThreadPoolExecutor(2) as pool:
        endless = pool.submit(chat, gw, model, stream)
        assert chat(gw, "gpt-4o-mini").status == 200  # served while the endless answer is still running
        answer = endless.result(timeout=15)
    if answer.status == 200:
        assert stream, answer.text[:300]
        events = [line[6:] for line in answer.text.split("\n") if line.startswith("data: ")]
        assert events[-1] != "[DONE]", "an endless stream must not end as if it were complete"
        assert_openai_error(orjson.loads(events[-1]))
    else:
        assert answer.status in (502, 504), answer.text
        assert_openai_error(answer.json())
    faults.clear()


@pytest.fixture
async def oversized_server() -> AsyncIterator[str]:
    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"{" + b" " * 4096 + b"}", content_type="application/json")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(8):
            await response.write(b" " * 1024)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/declared", declared)
    app.router.add_get("/streamed", streamed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/declared", "/streamed"])
async def test_an_oversized_upstream_body_is_a_502(oversized_server: str, path: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "MAX_RESPONSE_BODY", 2048)
    async with aiohttp.ClientSession() as session:
        response = await session.get(oversized_server + path)
        with pytest.raises(UpstreamError) as refused:
            await upstream.read_body(response)
    assert refused.value.status == 502
    assert refused.value.to_openai()["error"]["message"]
