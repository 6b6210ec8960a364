"""The Anthropic simulator: as strict as the real Messages API, and answering the way
the translator expects (requests the translator builds are accepted)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from providers.anthropic import to_anthropic_request
from providers.anthropic_stream import AnthropicStreamTranslator, parse_anthropic_error
from providers.base import ApiRequest, Operation, SSEEvent, StreamState, UpstreamError
from providers.simulators.anthropic import create_app
from providers.simulators.common import SIMULATOR_STATE, Fault, SimulatorState
from providers.sse import SSEDecoder

HEADERS = {"x-api-key": "sk-ant-sim", "anthropic-version": "2023-06-01"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
WEATHER_TOOL = {
    "name": "get_current_weather",
    "description": "Get the current weather in a given location",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"],
    },
}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(), host="127.0.0.1")) as test_client:
        yield test_client


def state_of(client: TestClient[Any, Any]) -> SimulatorState:
    app = client.app
    assert app is not None
    state: SimulatorState = app[SIMULATOR_STATE]
    return state


def messages_body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "claude-3-5-sonnet-20241022", "max_tokens": 200, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


async def post(client: TestClient[Any, Any], body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with client.post("/v1/messages", data=orjson.dumps(body), headers=headers or HEADERS) as response:
        return response.status, orjson.loads(await response.read())


async def stream_events(client: TestClient[Any, Any], body: dict[str, Any], path: str = "/v1/messages",
                        headers: dict[str, str] | None = None) -> list[SSEEvent]:  # fmt: skip
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    async with client.post(path, data=orjson.dumps(body), headers=headers or HEADERS) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.content.iter_any():
            events.extend(decoder.feed(chunk))
    return events + decoder.flush()


async def test_plain_answer_and_record(client: TestClient[Any, Any]) -> None:
    status, message = await post(client, messages_body(user("Hello there"), system="Be nice"))
    assert status == 200
    assert message["type"] == "message" and message["role"] == "assistant" and message["stop_reason"] == "end_turn"
    assert message["content"][0]["type"] == "text" and "Hello there" in message["content"][0]["text"]
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0
    received = state_of(client).received[-1]
    assert received.path == "/v1/messages" and received.json()["system"] == "Be nice"


@pytest.mark.parametrize(
    ("headers", "status", "error_type"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "k"}, 400, "invalid_request_error"),
    ],
)
async def test_headers_are_required(
    client: TestClient[Any, Any], headers: dict[str, str], status: int, error_type: str
) -> None:
    got, body = await post(client, messages_body(user("hi")), headers)
    assert got == status and body["type"] == "error" and body["error"]["type"] == error_type


TOOL_USE = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "m", "messages": [user("hi")]}, "max_tokens"),
        (messages_body({"role": "system", "content": "x"}, user("hi")), 'Unexpected role "system"'),
        (messages_body(user("a"), user("b")), "roles must alternate"),
        (messages_body({"role": "assistant", "content": "a"}, user("b")), "first message"),
        (messages_body(user("")), "non-empty"),
        (
            messages_body(
                user([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@@"}}])
            ),
            "base64",
        ),  # fmt: skip
        (
            messages_body(
                user([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": PNG}}])
            ),
            "media_type",
        ),  # fmt: skip
        (
            messages_body(
                user([{"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}])
            ),
            "does not match the provided media type image/jpeg",
        ),  # fmt: skip
        (messages_body(user([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}])), "tool_use_id"),
        (messages_body(user("hi"), TOOL_USE, user("no result")), "without `tool_result`"),
        (
            messages_body(
                user("hi"),
                TOOL_USE,
                user([{"type": "text", "text": "x"}, {"type": "tool_result", "tool_use_id": "toolu_1"}]),
            ),
            "first",
        ),  # fmt: skip
        (messages_body(user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])), "not allowed in a user"),
        (messages_body(user("hi"), frequency_penalty=0), "Extra inputs"),
        (messages_body(user("hi"), temperature=1.5), "temperature"),
        (messages_body(user("hi"), tool_choice={"type": "any"}), "providing tools"),
        (messages_body(user("hi"), tools=[{"name": "f", "input_schema": {"type": "string"}}]), "input_schema"),
        (messages_body(user("hi"), stop_sequences=[" "]), "stop_sequences"),
    ],
)
async def test_strict_rejections(client: TestClient[Any, Any], body: dict[str, Any], fragment: str) -> None:
    status, error = await post(client, body)
    assert status == 400, error
    assert error["error"]["type"] == "invalid_request_error" and fragment in error["error"]["message"]


async def test_invalid_json_body(client: TestClient[Any, Any]) -> None:
    async with client.post("/v1/messages", data=b"{nope", headers=HEADERS) as response:
        assert response.status == 400


async def test_weather_question_calls_the_tool_after_a_sentence(client: TestClient[Any, Any]) -> None:
    status, message = await post(
        client, messages_body(user("What's the weather like in Boston?"), tools=[WEATHER_TOOL])
    )
    assert status == 200 and message["stop_reason"] == "tool_use"
    text, call = message["content"]
    assert text["type"] == "text"
    assert call["type"] == "tool_use" and call["name"] == "get_current_weather"
    assert call["input"] == {"location": "Hamburg"} and call["id"].startswith("toolu_")


async def test_two_cities_give_two_parallel_calls(client: TestClient[Any, Any]) -> None:
    body = messages_body(user("Weather in two cities please"), tools=[WEATHER_TOOL])
    _, message = await post(client, body)
    calls = [b for b in message["content"] if b["type"] == "tool_use"]
    assert [c["input"]["location"] for c in calls] == ["Hamburg", "Paris"]
    assert calls[0]["id"] != calls[1]["id"]
    body["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    _, message = await post(client, body)
    assert len([b for b in message["content"] if b["type"] == "tool_use"]) == 1


async def test_forced_tool_call_without_text(client: TestClient[Any, Any]) -> None:
    body = messages_body(user("Hi"), tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_current_weather"})
    _, message = await post(client, body)
    assert [b["type"] for b in message["content"]] == ["tool_use"]
    body["tool_choice"] = {"type": "none"}
    body["messages"] = [user("weather?")]
    _, message = await post(client, body)
    assert [b["type"] for b in message["content"]] == ["text"]


async def test_empty_tool_input_streams_as_one_empty_fragment(client: TestClient[Any, Any]) -> None:
    now = {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    body = messages_body(user("Hi"), tools=[now], tool_choice={"type": "tool", "name": "now"}, stream=True)
    events = await stream_events(client, body)
    deltas = [orjson.loads(e.data)["delta"] for e in events if e.event == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": ""}]  # as the API does: not "{}"


async def test_tool_result_round_trip(client: TestClient[Any, Any]) -> None:
    question = user("What's the weather like in Boston?")
    _, first = await post(client, messages_body(question, tools=[WEATHER_TOOL]))
    call = first["content"][-1]
    result = user([{"type": "tool_result", "tool_use_id": call["id"], "content": "22 degrees and sunny"}])
    status, second = await post(client, messages_body(question, {"role": "assistant", "content": first["content"]},
                                                      result, tools=[WEATHER_TOOL]))  # fmt: skip
    assert status == 200 and second["stop_reason"] == "end_turn"
    assert "22 degrees and sunny" in second["content"][0]["text"]


async def test_tool_blocks_need_tools(client: TestClient[Any, Any]) -> None:
    question = user("What's the weather like in Boston?")
    _, first = await post(client, messages_body(question, tools=[WEATHER_TOOL]))
    call = first["content"][-1]
    result = user([{"type": "tool_result", "tool_use_id": call["id"], "content": "22 degrees"}])
    history = [question, {"role": "assistant", "content": first["content"]}, result]
    status, error = await post(client, messages_body(*history))
    assert status == 400 and "must define tools" in error["error"]["message"]
    declared = {"name": call["name"], "input_schema": {"type": "object"}}
    status, answer = await post(client, messages_body(*history, tools=[declared], tool_choice={"type": "none"}))
    assert status == 200 and answer["stop_reason"] == "end_turn"


async def test_max_tokens_and_stop_sequences(client: TestClient[Any, Any]) -> None:
    _, message = await post(client, messages_body(user("hello"), max_tokens=3))
    assert message["stop_reason"] == "max_tokens" and len(message["content"][0]["text"].split()) == 3
    _, message = await post(client, messages_body(user("hello"), stop_sequences=["answer"]))
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "answer"
    assert "answer" not in message["content"][0]["text"]


async def test_requests_the_translator_builds_are_accepted(client: TestClient[Any, Any]) -> None:
    openai_body = {
        "model": "claude-3-5-sonnet",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [{"type": "text", "text": "Look"},
                                         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_current_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "21C"},
            {"role": "system", "content": "Answer briefly."},
        ],
        "tools": [{"type": "function", "function": {"name": "get_current_weather",
                                                    "parameters": WEATHER_TOOL["input_schema"]}}],
        "temperature": 0.5,
        "stop": "STOP",
        "user": "alice",
    }  # fmt: skip
    body = to_anthropic_request(ApiRequest(Operation.CHAT, openai_body, public_model="c"), "claude-3-5-sonnet-20241022")
    status, message = await post(client, body)
    assert status == 200, message
    assert "18C" in message["content"][0]["text"] and "21C" in message["content"][0]["text"]


async def test_stream_has_the_real_event_sequence(client: TestClient[Any, Any]) -> None:
    events = await stream_events(
        client, messages_body(user("Weather in two cities?"), tools=[WEATHER_TOOL], stream=True)
    )
    types = [orjson.loads(e.data)["type"] for e in events]
    assert [e.event for e in events] == types
    assert types[:3] == ["message_start", "content_block_start", "ping"]
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 3
    translator = AnthropicStreamTranslator(StreamState(public_model="c", include_usage=True))
    chunks = [orjson.loads(p) for e in events for p in translator.feed(e)] + translator.finish()
    calls = [c for ch in chunks if ch["choices"] for c in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert sorted({c["index"] for c in calls}) == [0, 1]
    assert translator.state.finish_reason == "tool_calls" and chunks[-1]["usage"]["completion_tokens"] > 0


async def test_stream_text_matches_plain_answer(client: TestClient[Any, Any]) -> None:
    _, plain = await post(client, messages_body(user("Tell me something")))
    events = await stream_events(client, messages_body(user("Tell me something"), stream=True))
    deltas = [orjson.loads(e.data)["delta"] for e in events if e.event == "content_block_delta"]
    assert "".join(d["text"] for d in deltas) == plain["content"][0]["text"]
    assert orjson.loads(events[-2].data)["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


@pytest.mark.parametrize(("status", "error_type"), [(429, "rate_limit_error"), (529, "overloaded_error"),
                                                    (500, "api_error"), (403, "permission_error")])  # fmt: skip
async def test_scripted_status_faults(client: TestClient[Any, Any], status: int, error_type: str) -> None:
    state_of(client).faults.append(Fault(status=status, retry_after=3))
    async with client.post("/v1/messages", data=orjson.dumps(messages_body(user("hi"))), headers=HEADERS) as response:
        body = await response.read()
        assert response.status == status
        error = parse_anthropic_error(response.status, response.headers, body)
    assert error.code == error_type and error.retry_after == (3.0 if status in (429, 529) else None)
    status_after, _ = await post(client, messages_body(user("hi")))
    assert status_after == 200  # a fault is consumed once


async def test_garbage_fault(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(garbage=True))
    async with client.post("/v1/messages", data=orjson.dumps(messages_body(user("hi"))), headers=HEADERS) as response:
        assert response.status == 200 and (await response.read()).startswith(b"<html>")


async def test_drop_before_response(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(drop_before_response=True))
    with pytest.raises(aiohttp.ClientError):
        async with client.post("/v1/messages", data=orjson.dumps(messages_body(user("hi"))), headers=HEADERS) as resp:
            await resp.read()


async def test_drop_after_chunks(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(drop_after_chunks=3))
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        body = messages_body(user("hi"), stream=True)
        async with client.post("/v1/messages", data=orjson.dumps(body), headers=HEADERS) as response:
            async for chunk in response.content.iter_any():
                events.extend(decoder.feed(chunk))
    assert [e.event for e in events] == ["message_start", "content_block_start", "ping"]


async def test_endless_stream_keeps_going(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(endless=True, delay_between_chunks=0.001))
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    body = messages_body(user("hi"), stream=True)
    async with asyncio.timeout(5):
        async with client.post("/v1/messages", data=orjson.dumps(body), headers=HEADERS) as response:
            async for chunk in response.content.iter_any():
                events.extend(decoder.feed(chunk))
                if len(events) > 50:
                    break
    assert len(events) > 50 and all(e.event != "message_stop" for e in events)


VERTEX_PATH = "/v1/projects/p/locations/europe-west1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022"


async def test_vertex_path(client: TestClient[Any, Any]) -> None:
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 50, "messages": [user("hi")]}
    bearer = {"authorization": "Bearer token"}
    async with client.post(VERTEX_PATH + ":rawPredict", data=orjson.dumps(body), headers=bearer) as response:
        assert response.status == 200
        assert (await response.json())["model"] == "claude-3-5-sonnet-v2@20241022"
    events = await stream_events(client, {**body, "stream": True}, VERTEX_PATH + ":streamRawPredict", bearer)
    assert events[-1].event == "message_stop"
    for bad_body, headers, status in [
        ({**body, "model": "x"}, bearer, 400),
        ({k: v for k, v in body.items() if k != "anthropic_version"}, bearer, 400),
        (body, {}, 401),
    ]:
        async with client.post(VERTEX_PATH + ":rawPredict", data=orjson.dumps(bad_body), headers=headers) as response:
            assert response.status == status


async def test_status_with_drop_after_chunks_is_a_mid_stream_error_event(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(status=529, drop_after_chunks=4))
    events = await stream_events(client, messages_body(user("Tell me a story"), stream=True))
    assert [e.event for e in events][:4] == ["message_start", "content_block_start", "ping", "content_block_delta"]
    assert events[-1].event == "error" and len(events) == 5
    translator = AnthropicStreamTranslator(StreamState(public_model="c", include_usage=True))
    for e in events[:-1]:
        translator.feed(e)
    with pytest.raises(UpstreamError) as caught:
        translator.feed(events[-1])
    assert caught.value.status == 529 and caught.value.code == "overloaded_error"
    state_of(client).faults.append(Fault(status=529, drop_after_chunks=4))
    status, body = await post(client, messages_body(user("hi")))  # a plain call gets the status itself
    assert status == 529 and body["error"]["type"] == "overloaded_error"
