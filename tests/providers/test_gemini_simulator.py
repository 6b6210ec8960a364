"""The Gemini simulator: as strict as the real API, and answering the way the translator
expects (requests the translator builds are accepted and its answers translate)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from providers.base import ApiRequest, Operation, UpstreamError
from providers.gemini import ADAPTERS, GeminiAdapter
from providers.settings import ProviderSettings, Secret
from providers.simulators.common import SIMULATOR_STATE, Fault, SimulatorState, reply_text
from providers.simulators.gemini import EMBEDDING_DIMENSION, create_app, embedding_vector
from providers.sse import SSEDecoder

KEY = {"x-goog-api-key": "AIza-simulated"}
GENERATE = "/v1beta/models/gemini-1.5-pro:generateContent"
STREAM = "/v1beta/models/gemini-1.5-pro:streamGenerateContent?alt=sse"
EMBED = "/v1beta/models/text-embedding-004:batchEmbedContents"
VERTEX = "/v1/projects/p/locations/europe-west4/publishers/google/models"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
WEATHER = {
    "name": "get_current_weather",
    "description": "Get the current weather",
    "parameters": {
        "type": "OBJECT",
        "properties": {"location": {"type": "STRING"}, "format": {"type": "STRING", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location", "format"],
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


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"text": value}


async def post(
    client: TestClient[Any, Any], body: Any, path: str = GENERATE, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with client.post(path, data=orjson.dumps(body), headers=KEY if headers is None else headers) as response:
        return response.status, orjson.loads(await response.read())


async def rejected(client: TestClient[Any, Any], body: Any, path: str = GENERATE) -> str:
    status, answer = await post(client, body, path)
    assert status == 400, answer
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    message: str = answer["error"]["message"]
    return message


# --- strictness -----------------------------------------------------------------------


async def test_api_key_is_required(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, {"contents": [user(text("hi"))]}, headers={})
    assert status == 403 and answer["error"]["status"] == "PERMISSION_DENIED"
    status, answer = await post(client, {"contents": [user(text("hi"))]}, headers={"x-goog-api-key": "invalid-key"})
    assert status == 400 and answer["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, _ = await post(client, {"contents": [user(text("hi"))]}, path=GENERATE + "?key=AIza-in-query", headers={})
    assert status == 200


async def test_vertex_needs_a_bearer_token(client: TestClient[Any, Any]) -> None:
    path = f"{VERTEX}/gemini-1.5-pro:generateContent"
    status, answer = await post(client, {"contents": [user(text("hi"))]}, path=path)
    assert status == 401 and answer["error"]["status"] == "UNAUTHENTICATED"
    status, answer = await post(client, {"contents": [user(text("hi"))]}, path, {"Authorization": "Bearer ya29.x"})
    assert status == 200 and answer["candidates"][0]["finishReason"] == "STOP"
    # Vertex wants the role on every turn
    status, _ = await post(client, {"contents": [{"parts": [text("hi")]}]}, path, {"Authorization": "Bearer ya29.x"})
    assert status == 400


async def test_assistant_role_is_rejected(client: TestClient[Any, Any]) -> None:
    body = {"contents": [user(text("hi")), {"role": "assistant", "parts": [text("hello")]}, user(text("and?"))]}
    assert "valid role: user, model" in await rejected(client, body)


@pytest.mark.parametrize(
    ("parameters", "complaint"),
    [
        ({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": False},
         'Unknown name "additionalProperties"'),
        ({"type": "OBJECT", "properties": {"a": {"$ref": "#/$defs/A"}}}, 'Unknown name "$ref"'),
        ({"type": "OBJECT", "properties": {}}, "should be non-empty for OBJECT type"),
        ({"type": "OBJECT", "properties": {"a": {"type": "INTEGER", "enum": [1, 2]}}}, "enum values must be strings"),
        ({"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["b"]}, "property is not defined"),
        ({"type": "DICT", "properties": {"a": {"type": "STRING"}}}, "Invalid value"),
        ({"type": "OBJECT", "properties": {"a": {"type": "ARRAY"}}}, "items: missing field"),
    ],
)  # fmt: skip
async def test_bad_function_declarations_are_rejected(
    client: TestClient[Any, Any], parameters: dict[str, Any], complaint: str
) -> None:
    body = {
        "contents": [user(text("hi"))],
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": parameters}]}],
    }
    assert complaint in await rejected(client, body)


async def test_bad_function_name_and_tool_config(client: TestClient[Any, Any]) -> None:
    tools = [{"functionDeclarations": [WEATHER]}]
    body = {"contents": [user(text("hi"))], "tools": [{"functionDeclarations": [{"name": "1-bad name"}]}]}
    assert "Invalid function name" in await rejected(client, body)
    config = {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["get_current_weather"]}}
    assert "only allowed when mode is ANY" in await rejected(
        client, {"contents": [user(text("hi"))], "tools": tools, "toolConfig": config}
    )
    config = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}
    assert "not declared" in await rejected(
        client, {"contents": [user(text("hi"))], "tools": tools, "toolConfig": config}
    )
    config = {"functionCallingConfig": {"mode": "AUTO"}}
    assert "without function_declarations" in await rejected(
        client, {"contents": [user(text("hi"))], "toolConfig": config}
    )


async def test_bad_inline_data_is_rejected(client: TestClient[Any, Any]) -> None:
    bad_base64 = {"inlineData": {"mimeType": "image/png", "data": "not base64!"}}
    assert "Base64 decoding failed" in await rejected(client, {"contents": [user(text("look"), bad_base64)]})
    bad_type = {"inlineData": {"mimeType": "image/x-bitmap", "data": PNG}}
    assert "Unsupported MIME type" in await rejected(client, {"contents": [user(text("look"), bad_type)]})
    good = {"inlineData": {"mimeType": "image/png", "data": PNG}}
    status, _ = await post(client, {"contents": [user(text("look"), good)]})
    assert status == 200


async def test_function_responses_must_follow_function_calls(client: TestClient[Any, Any]) -> None:
    response = {"functionResponse": {"name": "get_current_weather", "response": {"result": "sunny"}}}
    call = {"functionCall": {"name": "get_current_weather", "args": {"location": "Paris"}}}
    lonely = {"contents": [user(text("hi")), {"role": "model", "parts": [text("ok")]}, user(response)]}
    assert "immediately after a function call turn" in await rejected(client, lonely)
    uneven = {"contents": [user(text("weather?")), {"role": "model", "parts": [call, call]}, user(response)]}
    assert "number of function response parts" in await rejected(client, uneven)
    call_first = {"contents": [{"role": "model", "parts": [call]}, user(response)]}
    assert "function call turn comes immediately after a user turn" in await rejected(client, call_first)


async def test_unknown_fields_and_empty_parts_are_rejected(client: TestClient[Any, Any]) -> None:
    assert 'Unknown name "messages"' in await rejected(client, {"messages": []})
    assert "contents is not specified" in await rejected(client, {"contents": []})
    assert "must not be empty" in await rejected(client, {"contents": [user()]})
    body = {"contents": [user(text("hi"))], "generationConfig": {"max_tokens": 5}}
    assert 'Unknown name "max_tokens"' in await rejected(client, body)


async def test_unknown_model_is_not_found(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, {"contents": [user(text("hi"))]}, "/v1beta/models/gpt-4o:generateContent")
    assert status == 404 and answer["error"]["status"] == "NOT_FOUND"


# --- answers --------------------------------------------------------------------------


async def test_text_answer_with_usage(client: TestClient[Any, Any]) -> None:
    body = {"systemInstruction": {"parts": [text("Be brief.")]}, "contents": [user(text("Hello there"))]}
    status, answer = await post(client, body)
    assert status == 200
    [candidate] = answer["candidates"]
    assert candidate["content"] == {"parts": [{"text": reply_text("Hello there")}], "role": "model"}
    assert candidate["finishReason"] == "STOP"
    usage = answer["usageMetadata"]
    assert usage["promptTokenCount"] > 0 and usage["candidatesTokenCount"] > 0
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert state_of(client).received[-1].json() == body


async def test_max_output_tokens_ends_with_max_tokens(client: TestClient[Any, Any]) -> None:
    _, answer = await post(client, {"contents": [user(text("Hello"))], "generationConfig": {"maxOutputTokens": 3}})
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert len(answer["candidates"][0]["content"]["parts"][0]["text"].split()) == 3


async def test_unsafe_prompt_ends_with_safety(client: TestClient[Any, Any]) -> None:
    _, answer = await post(client, {"contents": [user(text("something unsafe"))]})
    [candidate] = answer["candidates"]
    assert candidate["finishReason"] == "SAFETY"
    assert "content" not in candidate
    assert candidate["safetyRatings"][0]["blocked"] is True


async def test_tools_are_called_and_answered(client: TestClient[Any, Any]) -> None:
    tools = [{"functionDeclarations": [WEATHER]}]
    _, answer = await post(client, {"contents": [user(text("What's the weather in Hamburg?"))], "tools": tools})
    parts = answer["candidates"][0]["content"]["parts"]
    assert parts == [
        {"functionCall": {"name": "get_current_weather", "args": {"location": "Hamburg", "format": "celsius"}}}
    ]
    assert answer["candidates"][0]["finishReason"] == "STOP"
    # two cities: two parallel calls
    _, answer = await post(client, {"contents": [user(text("Weather in Tokyo and in Paris?"))], "tools": tools})
    calls = [p["functionCall"]["args"]["location"] for p in answer["candidates"][0]["content"]["parts"]]
    assert calls == ["Tokyo", "Paris"]  # in the order asked
    _, answer = await post(client, {"contents": [user(text("Check the weather in two places"))], "tools": tools})
    calls = [p["functionCall"]["args"]["location"] for p in answer["candidates"][0]["content"]["parts"]]
    assert calls == ["Hamburg", "Paris"]
    # the function response turn gets a text answer
    response = {"functionResponse": {"name": "get_current_weather", "response": {"temperature": 18}}}
    contents = [user(text("Weather in Hamburg?")), {"role": "model", "parts": parts}, user(response)]
    _, answer = await post(client, {"contents": contents, "tools": tools})
    assert "temperature" in answer["candidates"][0]["content"]["parts"][0]["text"]


async def test_several_named_tools_are_each_called(client: TestClient[Any, Any]) -> None:
    time_tool = {"name": "get_time", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}
    tools = [{"functionDeclarations": [WEATHER, time_tool]}]
    prompt = "Use get_current_weather and get_time for Berlin"
    _, answer = await post(client, {"contents": [user(text(prompt))], "tools": tools})
    calls = [p["functionCall"] for p in answer["candidates"][0]["content"]["parts"]]
    assert [c["name"] for c in calls] == ["get_current_weather", "get_time"]
    assert calls[0]["args"]["location"] == "Berlin" and calls[1]["args"]["city"] == "Berlin"


async def test_tool_modes(client: TestClient[Any, Any]) -> None:
    tools = [{"functionDeclarations": [WEATHER]}]
    none = {"functionCallingConfig": {"mode": "NONE"}}
    _, answer = await post(client, {"contents": [user(text("weather?"))], "tools": tools, "toolConfig": none})
    assert "text" in answer["candidates"][0]["content"]["parts"][0]
    anything = {"functionCallingConfig": {"mode": "ANY"}}
    _, answer = await post(client, {"contents": [user(text("Hi"))], "tools": tools, "toolConfig": anything})
    assert "functionCall" in answer["candidates"][0]["content"]["parts"][0]
    _, answer = await post(client, {"contents": [user(text("Hi"))], "tools": tools})
    assert "text" in answer["candidates"][0]["content"]["parts"][0]


async def test_candidate_count(client: TestClient[Any, Any]) -> None:
    _, answer = await post(client, {"contents": [user(text("Hi"))], "generationConfig": {"candidateCount": 2}})
    assert [c["index"] for c in answer["candidates"]] == [0, 1]


# --- streams --------------------------------------------------------------------------


async def read_stream(client: TestClient[Any, Any], body: Any, path: str = STREAM) -> tuple[bytes, list[Any]]:
    async with client.post(path, data=orjson.dumps(body), headers=KEY) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.flush()
    return raw, [orjson.loads(e.data) for e in events]


async def test_stream_is_crlf_framed_and_matches_the_whole_answer(client: TestClient[Any, Any]) -> None:
    raw, chunks = await read_stream(client, {"contents": [user(text("Hello there"))]})
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n")
    assert b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == reply_text("Hello there")
    assert [c["candidates"][0].get("finishReason") for c in chunks][-2:] == [None, "STOP"]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] > chunks[0]["usageMetadata"]["candidatesTokenCount"]


async def test_stream_without_alt_sse_is_a_json_array(client: TestClient[Any, Any]) -> None:
    path = "/v1beta/models/gemini-1.5-pro:streamGenerateContent"
    status, answer = await post(client, {"contents": [user(text("Hello"))]}, path)
    assert status == 200 and isinstance(answer, list) and answer[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_streamed_unsafe_prompt_and_function_call(client: TestClient[Any, Any]) -> None:
    _, chunks = await read_stream(client, {"contents": [user(text("tell me something unsafe"))]})
    assert chunks[-1]["candidates"][0]["finishReason"] == "SAFETY"
    tools = [{"functionDeclarations": [WEATHER]}]
    _, chunks = await read_stream(client, {"contents": [user(text("weather in Paris and Berlin"))], "tools": tools})
    [chunk] = chunks  # whole function calls in one chunk, as the real API sends them
    assert len(chunk["candidates"][0]["content"]["parts"]) == 2


# --- embeddings -----------------------------------------------------------------------


async def test_batch_embed_contents(client: TestClient[Any, Any]) -> None:
    texts = ["one", "two", "three", "four", "five"]
    requests: list[dict[str, Any]] = [
        {"model": "models/text-embedding-004", "content": {"parts": [text(t)]}} for t in texts
    ]
    status, answer = await post(client, {"requests": requests}, EMBED)
    assert status == 200
    vectors = [e["values"] for e in answer["embeddings"]]
    assert len(vectors) == 5 and all(len(v) == EMBEDDING_DIMENSION for v in vectors)
    assert vectors[0] == embedding_vector("one") and vectors[0] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3
    requests[0]["outputDimensionality"] = 16
    _, answer = await post(client, {"requests": requests[:1]}, EMBED)
    assert len(answer["embeddings"][0]["values"]) == 16


async def test_batch_embed_contents_strictness(client: TestClient[Any, Any]) -> None:
    wrong_model = [{"model": "models/other", "content": {"parts": [text("a")]}}]
    assert "models/text-embedding-004" in await rejected(client, {"requests": wrong_model}, EMBED)
    assert "must not be empty" in await rejected(client, {"requests": []}, EMBED)
    status, _ = await post(
        client, {"contents": [user(text("hi"))]}, "/v1beta/models/text-embedding-004:generateContent"
    )
    assert status == 404


async def test_vertex_predict_embeddings(client: TestClient[Any, Any]) -> None:
    path = f"{VERTEX}/text-embedding-004:predict"
    body = {"instances": [{"content": "a b c"}], "parameters": {"outputDimensionality": 8}}
    status, answer = await post(client, body, path, {"Authorization": "Bearer ya29.x"})
    assert status == 200
    [prediction] = answer["predictions"]
    assert len(prediction["embeddings"]["values"]) == 8
    assert prediction["embeddings"]["statistics"]["token_count"] == 3


# --- faults ---------------------------------------------------------------------------


async def test_scripted_status_with_retry_info(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(status=429, retry_after=7))
    async with client.post(GENERATE, data=orjson.dumps({"contents": [user(text("hi"))]}), headers=KEY) as response:
        body = await response.read()
        assert response.status == 429 and response.headers["retry-after"] == "7"
    error = gemini_adapter("http://unused").parse_error(429, {}, body)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)
    status, _ = await post(client, {"contents": [user(text("hi"))]})
    assert status == 200  # a fault is consumed once


@pytest.mark.parametrize(("status", "rpc"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")])
async def test_scripted_server_errors(client: TestClient[Any, Any], status: int, rpc: str) -> None:
    state_of(client).faults.append(Fault(status=status, path="generateContent"))
    got, answer = await post(client, {"contents": [user(text("hi"))]})
    assert got == status and answer["error"] == {"code": status, "message": answer["error"]["message"], "status": rpc}


async def test_garbage_bodies(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(garbage=True))
    async with client.post(GENERATE, data=orjson.dumps({"contents": [user(text("hi"))]}), headers=KEY) as response:
        assert response.status == 200 and not (await response.read()).startswith(b"{")
    state_of(client).faults.append(Fault(garbage=True))
    async with client.post(STREAM, data=orjson.dumps({"contents": [user(text("hi"))]}), headers=KEY) as response:
        raw = await response.read()
    decoder = SSEDecoder()
    translator = gemini_adapter("http://unused").stream_translator(chat_request(stream=True))
    with pytest.raises(UpstreamError):
        for event in decoder.feed(raw):
            translator.feed(event)


async def test_drop_after_chunks_truncates_the_stream(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(drop_after_chunks=2))
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with client.post(STREAM, data=orjson.dumps({"contents": [user(text("Hello"))]}), headers=KEY) as response:
            async for piece in response.content.iter_any():
                received += piece
    assert received.count(b"data: ") == 2


async def test_status_after_chunks_is_an_error_event_mid_stream(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(status=503, drop_after_chunks=2))
    raw, chunks = await read_stream(client, {"contents": [user(text("Hello there"))]})
    assert len(chunks) == 3 and "candidates" in chunks[1]
    assert chunks[2] == {"error": {"code": 503, "message": chunks[2]["error"]["message"], "status": "UNAVAILABLE"}}
    translator = gemini_adapter("http://unused").stream_translator(chat_request(stream=True))
    decoder = SSEDecoder()
    with pytest.raises(UpstreamError) as caught:
        for event in decoder.feed(raw):
            translator.feed(event)
    assert caught.value.status == 503 and caught.value.retryable


async def test_endless_plain_answer(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(endless=True))
    async with client.post(GENERATE, data=orjson.dumps({"contents": [user(text("Hello"))]}), headers=KEY) as response:
        received = b""
        while len(received) < 20:
            received += await asyncio.wait_for(response.content.readany(), 5)
    assert received.strip() == b""


async def test_drop_before_response(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(drop_before_response=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(client, {"contents": [user(text("hi"))]})


async def test_endless_stream_keeps_sending(client: TestClient[Any, Any]) -> None:
    state_of(client).faults.append(Fault(endless=True, delay_between_chunks=0.001))
    async with client.post(STREAM, data=orjson.dumps({"contents": [user(text("Hello"))]}), headers=KEY) as response:
        received = b""
        while received.count(b"\r\n\r\n") < 50:
            received += await asyncio.wait_for(response.content.readany(), 5)
    assert b"finishReason" not in received


# --- the translator against the simulator ----------------------------------------------


def gemini_adapter(base_url: str) -> GeminiAdapter:
    adapter = ADAPTERS["gemini"](ProviderSettings(name="g", kind="gemini", base_url=base_url, api_key=Secret("AIza")))
    assert isinstance(adapter, GeminiAdapter)
    return adapter


def chat_request(**fields: Any) -> ApiRequest:
    body = {"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "Hello"}], **fields}
    return ApiRequest(Operation.CHAT, body, "gemini-1.5-pro", stream=bool(fields.get("stream")))


async def test_translated_tool_round_trip_is_accepted(client: TestClient[Any, Any]) -> None:
    adapter = gemini_adapter(str(client.make_url("")))
    tools = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {
        "type": "object", "additionalProperties": False, "properties": {"location": {"type": "string"}},
        "required": ["location"]}}}]  # fmt: skip
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Berlin?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    ]  # fmt: skip
    request = ApiRequest(Operation.CHAT, {"model": "m", "messages": messages, "tools": tools}, "gemini-1.5-pro")
    call = adapter.to_upstream(request, "gemini-1.5-pro")
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        assert response.status == 200
        body, usage = adapter.from_upstream(request, await response.read())
    message = orjson.loads(body)["choices"][0]["message"]
    assert [orjson.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"location": "Paris"},
        {"location": "Berlin"},
    ]
    assert usage.prompt_tokens > 0
    messages.append(message)
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": "18C"} for c in message["tool_calls"]]
    request = ApiRequest(Operation.CHAT, {"model": "m", "messages": messages, "tools": tools}, "gemini-1.5-pro")
    call = adapter.to_upstream(request, "gemini-1.5-pro")
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        assert response.status == 200, await response.text()
        body, _ = adapter.from_upstream(request, await response.read())
    assert orjson.loads(body)["choices"][0]["finish_reason"] == "stop"


async def test_translated_stream_and_embeddings(client: TestClient[Any, Any]) -> None:
    adapter = gemini_adapter(str(client.make_url("")))
    request = ApiRequest(
        Operation.CHAT, chat_request(stream=True).body, "gemini-1.5-pro", stream=True, include_usage=True
    )
    call = adapter.to_upstream(request, "gemini-1.5-pro")
    translator = adapter.stream_translator(request)
    decoder = SSEDecoder()
    chunks: list[bytes] = []
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        async for piece in response.content.iter_any():
            for event in decoder.feed(piece):
                chunks += translator.feed(event)
    chunks += translator.finish()
    parsed = [orjson.loads(c) for c in chunks]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in parsed if c["choices"]) == reply_text("Hello")
    assert parsed[-1]["usage"]["completion_tokens"] > 0
    embed = ApiRequest(Operation.EMBEDDINGS, {"model": "e", "input": ["a", "b"]}, "text-embedding-004")
    call = adapter.to_upstream(embed, "text-embedding-004")
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        body, usage = adapter.from_upstream(embed, await response.read())
    assert [len(d["embedding"]) for d in orjson.loads(body)["data"]] == [EMBEDDING_DIMENSION] * 2
    assert usage.estimated


async def test_translated_vertex_calls_are_accepted(client: TestClient[Any, Any]) -> None:
    config = ProviderSettings(name="v", kind="vertex", base_url=str(client.make_url("")), project="p",
                            location="europe-west4", api_key=Secret("ya29.token"))  # fmt: skip
    adapter = ADAPTERS["vertex"](config)
    request = chat_request()
    call = adapter.to_upstream(request, "gemini-1.5-pro")
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        assert response.status == 200
        body, _ = adapter.from_upstream(request, await response.read())
    assert orjson.loads(body)["choices"][0]["message"]["content"] == reply_text("Hello")
    embed = ApiRequest(Operation.EMBEDDINGS, {"model": "e", "input": ["a b", "c"]}, "text-embedding-004")
    call = adapter.to_upstream(embed, "text-embedding-004")
    async with client.session.post(call.url, data=call.body, headers=dict(call.headers)) as response:
        _, usage = adapter.from_upstream(embed, await response.read())
    assert (usage.prompt_tokens, usage.estimated) == (3, False)  # Vertex reports token counts
    assert state_of(client).received[-1].headers["Authorization"] == "Bearer ya29.token"
