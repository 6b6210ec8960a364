"""Gemini behind the OpenAI API, end to end: the stock `openai` client against the
gateway and the Gemini simulator (Gemini API and Vertex AI paths). Each test checks
both sides: what the client got, and what the simulator received (path, key header,
the translated GenerateContentRequest)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from providers.gemini_stream import estimate_tokens
from providers.simulators.common import Fault
from providers.simulators.gemini import EMBEDDING_DIMENSION, embedding_vector
from tests.e2e.gemini_support import (
    EMBEDDING_MODEL,
    GIF_BYTES,
    IMAGE_CAP,
    IMAGE_HOST,
    JPEG_BYTES,
    MODEL,
    UPSTREAM_KEY,
    LoopbackImageHost,
    assert_gemini_call,
    chat,
    finish_reasons,
    gemini_table,
    simulator_answer,
    simulator_text,
    simulator_usage,
    streamed_text,
    tool_call_deltas,
    usage_of,
)
from tests.harness import Gateway

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n a tiny png").decode()
WEATHER_TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                   "description": "The temperature unit to use. Infer this from the users location."}},
        "required": ["location", "format"]}}}]
# What Gemini is sent for WEATHER_TOOLS: the same schema in Gemini's OpenAPI-subset form.
WEATHER_DECLARATIONS = [{"functionDeclarations": [{
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "OBJECT", "properties": {
        "location": {"type": "STRING", "description": "The city and state, e.g. San Francisco, CA"},
        "format": {"type": "STRING", "format": "enum", "enum": ["celsius", "fahrenheit"],
                   "description": "The temperature unit to use. Infer this from the users location."}},
        "required": ["location", "format"]}}]}]
GUIDE_SYSTEM = ("Don't make assumptions about what values to plug into functions. "
                "Ask for clarification if a user request is ambiguous.")


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(gemini_table()) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def no_leftover_faults(gw: Gateway) -> Iterator[None]:
    gw.sim("gemini").faults.clear()
    yield
    gw.sim("gemini").faults.clear()


@pytest.fixture(scope="module")
def image_host(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackImageHost]:
    host = LoopbackImageHost(gw, tmp_path_factory.mktemp("image-host")).open()
    yield host
    host.close()


def error_of(exc: openai.APIError) -> dict[str, Any]:
    """The OpenAI error object the client was given."""
    assert isinstance(exc.body, dict)
    return exc.body


# --- text ------------------------------------------------------------------------


def test_plain_chat_translates_roles_system_and_generation_config(gw: Gateway) -> None:
    response, received = chat(gw, messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is Open"},
        {"role": "user", "content": [{"type": "text", "text": "Telekom Cloud?"}]},
        {"role": "assistant", "content": "Shall I answer briefly?"},
        {"role": "developer", "content": "Answer in one sentence."},
        {"role": "user", "content": "Yes, briefly"}],
        temperature=0.1, top_p=0.9, max_tokens=256, stop=["never-said"], seed=7, user="user-42")
    assert response.object == "chat.completion" and response.model == MODEL
    assert response.id.startswith("chatcmpl-")
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == simulator_text(received)
    assert response.choices[0].message.content.endswith("You said: Yes, briefly")
    assert response.choices[0].finish_reason == "stop"
    assert usage_of(response) == simulator_usage(received)
    body = assert_gemini_call(received)
    assert body == {
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant."},
                                        {"text": "Answer in one sentence."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "What is Open"}, {"text": "Telekom Cloud?"}]},
            {"role": "model", "parts": [{"text": "Shall I answer briefly?"}]},
            {"role": "user", "parts": [{"text": "Yes, briefly"}]}],
        "generationConfig": {"temperature": 0.1, "topP": 0.9, "maxOutputTokens": 256,
                             "stopSequences": ["never-said"], "seed": 7}}


def test_json_mode_and_candidate_count(gw: Gateway) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Hello"}], n=2,
                              response_format={"type": "json_object"}, max_completion_tokens=50)
    assert [c.index for c in response.choices] == [0, 1] and response.model == MODEL
    assert assert_gemini_call(received)["generationConfig"] == {
        "candidateCount": 2, "maxOutputTokens": 50, "responseMimeType": "application/json"}


@pytest.mark.parametrize(("parameters", "param"), [
    ({"logit_bias": {"42": 10}}, "logit_bias"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"top_logprobs": 2}, "top_logprobs"),
])
def test_parameters_without_equivalent_are_refused_by_name(gw: Gateway, parameters: dict[str, Any],
                                                           param: str) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], **parameters)
    assert caught.value.status_code == 400
    assert error_of(caught.value)["param"] == param and error_of(caught.value)["type"] == "invalid_request_error"
    assert len(sim.received) == before  # refused before any upstream call


def test_streaming_text(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "user", "content": "Hello there"}], stream=True)
    assert streamed_text(chunks) == simulator_text(received)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 5  # word by word, as the events came
    assert finish_reasons(chunks) == ["stop"]
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)  # not asked for
    body = assert_gemini_call(received, stream=True)
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}


def test_stream_include_usage_ends_with_the_simulators_counts(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Count my words please"}],
                            stream=True, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == [] and last.model == MODEL
    assert usage_of(last) == simulator_usage(received)
    assert all(c.usage is None for c in chunks[:-1])
    assert finish_reasons(chunks) == ["stop"]
    body = assert_gemini_call(received, stream=True)
    assert "stream_options" not in body and "generationConfig" not in body  # usage comes in every event


# --- finish reasons --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_length_with_small_max_tokens(gw: Gateway, stream: bool) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Tell me a long story"}],
                              max_tokens=3, stream=stream)
    text = streamed_text(response) if stream else response.choices[0].message.content
    finish = finish_reasons(response) if stream else [response.choices[0].finish_reason]
    assert text == "This is a" and finish == ["length"]
    assert assert_gemini_call(received, stream)["generationConfig"] == {"maxOutputTokens": 3}


@pytest.mark.parametrize("stream", [False, True])
def test_safety_stop_is_content_filter(gw: Gateway, stream: bool) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Tell me something unsafe"}],
                              stream=stream)
    if stream:
        assert finish_reasons(response) == ["content_filter"]
        assert streamed_text(response) == "This is a"  # what came before the stop
        assert all(c.model == MODEL for c in response)
    else:
        assert response.choices[0].finish_reason == "content_filter"
        assert response.choices[0].message.content is None  # Gemini sends no parts for a blocked answer
        assert response.model == MODEL and usage_of(response) == simulator_usage(received)
    assert_gemini_call(received, stream)


# --- tools -----------------------------------------------------------------------


def test_tool_call_and_function_response_round_trip_as_in_the_guide(gw: Gateway) -> None:
    messages: list[Any] = [{"role": "system", "content": GUIDE_SYSTEM},
                           {"role": "user", "content": "What's the weather like today in Hamburg"}]
    chat_response, first = chat(gw, messages=messages, tools=WEATHER_TOOLS)
    assert chat_response.model == MODEL and chat_response.choices[0].finish_reason == "tool_calls"
    assistant_message = chat_response.choices[0].message
    [call] = assistant_message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Hamburg", "format": "celsius"}
    body = assert_gemini_call(first)
    assert body["tools"] == WEATHER_DECLARATIONS
    assert body["systemInstruction"] == {"parts": [{"text": GUIDE_SYSTEM}]}
    assert "toolConfig" not in body  # auto is Gemini's default

    messages.append(assistant_message)  # the guide appends the pydantic message itself
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 12, "unit": "celsius"}'})
    answer, second = chat(gw, messages=messages, tools=WEATHER_TOOLS)
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content == simulator_text(second)
    assert 'get_current_weather said {"temperature":12,"unit":"celsius"}' in answer.choices[0].message.content
    assert assert_gemini_call(second)["contents"] == [
        {"role": "user", "parts": [{"text": "What's the weather like today in Hamburg"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_current_weather",
                                                      "args": {"location": "Hamburg", "format": "celsius"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_current_weather",
                                                         "response": {"temperature": 12, "unit": "celsius"}}}]}]


def two_city_calls(gw: Gateway, stream: bool) -> tuple[list[Any], list[str]]:
    """Ask for two cities; (the tool calls as message dicts, the ids), checked on the way."""
    response, received = chat(gw, messages=[{"role": "user", "content": "Weather in Hamburg and in Paris?"}],
                              tools=WEATHER_TOOLS, stream=stream)
    upstream = [p["functionCall"] for p in simulator_answer(received)["candidates"][0]["content"]["parts"]]
    assert [c["args"]["location"] for c in upstream] == ["Hamburg", "Paris"]
    assert assert_gemini_call(received, stream)["tools"] == WEATHER_DECLARATIONS
    if not stream:
        assert response.choices[0].finish_reason == "tool_calls" and response.model == MODEL
        calls = [c.model_dump() for c in response.choices[0].message.tool_calls]
    else:
        assert finish_reasons(response) == ["tool_calls"] and all(c.model == MODEL for c in response)
        deltas = tool_call_deltas(response)
        # Gemini sends each call whole: one delta per call, with its index, id and name.
        assert [d.index for d in deltas] == [0, 1]
        calls = [{"id": d.id, "type": d.type, "function": d.function.model_dump()} for d in deltas]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [c["args"] for c in upstream]
    assert [c["function"]["name"] for c in calls] == ["get_current_weather"] * 2
    ids = [c["id"] for c in calls]
    assert all(i.startswith("call_") for i in ids) and ids[0] != ids[1]
    return calls, ids


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_calls_and_results_matched_back_by_id(gw: Gateway, stream: bool) -> None:
    calls, ids = two_city_calls(gw, stream)
    messages: list[Any] = [{"role": "user", "content": "Weather in Hamburg and in Paris?"},
                           {"role": "assistant", "content": None, "tool_calls": calls}]
    # The results come back in the other order: the ids say which call each answers.
    messages += [{"role": "tool", "tool_call_id": ids[1], "content": '{"location": "Paris", "temperature": 18}'},
                 {"role": "tool", "tool_call_id": ids[0], "content": '{"location": "Hamburg", "temperature": 9}'}]
    answer, received = chat(gw, messages=messages, tools=WEATHER_TOOLS, stream=stream)
    text = streamed_text(answer) if stream else answer.choices[0].message.content
    assert text == simulator_text(received)
    assert (finish_reasons(answer) if stream else [answer.choices[0].finish_reason]) == ["stop"]
    contents = assert_gemini_call(received, stream)["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_current_weather", "args": {"location": "Hamburg", "format": "celsius"}}},
        {"functionCall": {"name": "get_current_weather", "args": {"location": "Paris", "format": "celsius"}}}]}
    # One user turn, the responses in the order of the calls they answer.
    assert contents[2:] == [{"role": "user", "parts": [
        {"functionResponse": {"name": "get_current_weather", "response": {"location": "Hamburg", "temperature": 9}}},
        {"functionResponse": {"name": "get_current_weather", "response": {"location": "Paris", "temperature": 18}}},
    ]}]


@pytest.mark.parametrize(("tool_choice", "expected", "calls"), [
    ("required", {"mode": "ANY"}, 1),
    ({"type": "function", "function": {"name": "get_current_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_current_weather"]}, 1),
    ("none", {"mode": "NONE"}, 0),
])
def test_tool_choice(gw: Gateway, tool_choice: Any, expected: dict[str, Any], calls: int) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Hello"}], tools=WEATHER_TOOLS,
                              tool_choice=tool_choice)
    assert assert_gemini_call(received)["toolConfig"] == {"functionCallingConfig": expected}
    assert len(response.choices[0].message.tool_calls or []) == calls
    assert response.choices[0].finish_reason == ("tool_calls" if calls else "stop")


def test_schema_gemini_cannot_take_is_cleaned(gw: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}},
                       "note": {"type": ["string", "null"]}},
        "required": ["ids"]}}}]
    response, received = chat(gw, messages=[{"role": "user", "content": "Call lookup"}], tools=tools)
    assert response.choices[0].message.tool_calls[0].function.name == "lookup"
    [declaration] = assert_gemini_call(received)["tools"][0]["functionDeclarations"]
    assert declaration == {"name": "lookup", "parameters": {"type": "OBJECT", "properties": {
        "ids": {"type": "ARRAY", "items": {"type": "INTEGER"}}, "note": {"type": "STRING", "nullable": True}},
        "required": ["ids"]}}


# --- images ----------------------------------------------------------------------


def image_message(url: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "What's in this image?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize("media_type", ["image/png", "image/jpeg", "image/webp"])
def test_data_uri_image_becomes_inline_data(gw: Gateway, media_type: str) -> None:
    response, received = chat(gw, messages=image_message(f"data:{media_type};base64,{PNG}"), max_tokens=300)
    assert "What's in this image?" in response.choices[0].message.content and response.model == MODEL
    assert assert_gemini_call(received)["contents"] == [{"role": "user", "parts": [
        {"text": "What's in this image?"}, {"inlineData": {"mimeType": media_type, "data": PNG}}]}]


def test_https_image_url_is_fetched_and_inlined(gw: Gateway, image_host: LoopbackImageHost) -> None:
    url = f"https://{IMAGE_HOST}/boardwalk.jpg"
    chunks, received = chat(gw, messages=image_message(url), stream=True)
    assert finish_reasons(chunks) == ["stop"] and all(c.model == MODEL for c in chunks)
    image = assert_gemini_call(received, stream=True)["contents"][0]["parts"][1]
    assert image == {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG_BYTES).decode()}}


def test_image_redirect_to_a_public_host_is_followed(gw: Gateway, image_host: LoopbackImageHost) -> None:
    url = f"https://{IMAGE_HOST}/redirect?to=https://{IMAGE_HOST}/boardwalk.jpg"
    response, received = chat(gw, messages=image_message(url))
    assert response.choices[0].finish_reason == "stop"
    image = assert_gemini_call(received)["contents"][0]["parts"][1]
    assert image["inlineData"]["data"] == base64.b64encode(JPEG_BYTES).decode()


@pytest.mark.parametrize(("path", "why"), [
    ("/redirect?to=https://127.0.0.1/cat.png", "not a public address"),
    ("/redirect?to=https://metadata.google.internal/cat.png", "not a public name"),
    ("/redirect?to=http://images.example.com/boardwalk.jpg", "only https"),
    ("/large.png", f"larger than the limit of {IMAGE_CAP} bytes"),
    ("/page.html", "did not return an image"),
    ("/missing.png", "answered HTTP 404"),
])
def test_image_the_guard_refuses_is_a_400_without_an_upstream_call(
        gw: Gateway, image_host: LoopbackImageHost, path: str, why: str) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=MODEL, messages=image_message(f"https://{IMAGE_HOST}{path}"))
    assert error_of(caught.value)["code"] == "invalid_image_url" and why in error_of(caught.value)["message"]
    assert len(sim.received) == before


def test_fetched_image_of_a_type_gemini_does_not_take_is_a_400(gw: Gateway, image_host: LoopbackImageHost) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=MODEL, messages=image_message(f"https://{IMAGE_HOST}/anim.gif"))
    assert "image/gif" in error_of(caught.value)["message"] and len(GIF_BYTES) < IMAGE_CAP
    assert error_of(caught.value)["param"] == "messages[0].content[1].image_url.url"
    assert len(sim.received) == before


@pytest.mark.parametrize("url", ["data:image/bmp;base64," + PNG, "https://127.0.0.1/cat.png",
                                 "http://example.com/cat.png"])
def test_unusable_images_are_refused_before_the_upstream(gw: Gateway, url: str) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError):
        gw.client().chat.completions.create(model=MODEL, messages=image_message(url))
    assert len(sim.received) == before


# --- embeddings ------------------------------------------------------------------

TEXTS = ["I am Batman and I'm rich", "I am Spiderman", "I am Ironman and I'm a bilionaire", "I am Flash",
         "I am the president of USA"]


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_embeddings_of_five_texts(gw: Gateway, encoding_format: str) -> None:
    sim = gw.sim("gemini")
    embeddings = gw.client().embeddings.create(input=TEXTS, model=EMBEDDING_MODEL,
                                               encoding_format=encoding_format)  # type: ignore[arg-type]
    assert embeddings.model == EMBEDDING_MODEL and len(embeddings.data) == 5
    if encoding_format == "float":
        vectors = [d.embedding for d in embeddings.data]
    else:  # asked explicitly, the client hands the base64 text over as is
        vectors = [list(memoryview(base64.b64decode(d.embedding)).cast("f")) for d in embeddings.data]  # type: ignore[arg-type]
    assert [len(v) for v in vectors] == [EMBEDDING_DIMENSION] * 5
    for text, vector in zip(TEXTS, vectors, strict=True):
        assert vector == pytest.approx(embedding_vector(text), abs=1e-6)
    # Gemini reports no token counts for embeddings: the gateway estimates them.
    assert embeddings.usage.prompt_tokens == embeddings.usage.total_tokens == sum(estimate_tokens(t) for t in TEXTS)
    received = sim.received[-1]
    assert received.path == f"/v1beta/models/{EMBEDDING_MODEL}:batchEmbedContents"
    assert received.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert received.json() == {"requests": [
        {"model": f"models/{EMBEDDING_MODEL}", "content": {"parts": [{"text": t}]}} for t in TEXTS]}


def test_embedding_dimensions(gw: Gateway) -> None:
    embeddings = gw.client().embeddings.create(input="one text", model=EMBEDDING_MODEL, dimensions=256)
    assert len(embeddings.data[0].embedding) == 256
    assert gw.sim("gemini").received[-1].json()["requests"][0]["outputDimensionality"] == 256


# --- errors ----------------------------------------------------------------------

ERROR_CASES = [
    # upstream status (Gemini's RPC status), what the client raises, the status it sees, the code
    (400, openai.BadRequestError, 400, None),  # INVALID_ARGUMENT
    (403, openai.InternalServerError, 502, None),  # PERMISSION_DENIED: our upstream key, not the caller's
    (404, openai.NotFoundError, 404, "not_found"),  # NOT_FOUND
    (429, openai.RateLimitError, 429, "rate_limit_exceeded"),  # RESOURCE_EXHAUSTED with RetryInfo
    (500, openai.InternalServerError, 500, None),  # INTERNAL
    (503, openai.InternalServerError, 503, "overloaded"),  # UNAVAILABLE
    (504, openai.InternalServerError, 504, "timeout"),  # DEADLINE_EXCEEDED
]


UPSTREAM_MESSAGES = {429: "You exceeded your current quota, please check your plan and billing details.",
                     503: "The model is overloaded. Please try again later."}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "error_class", "client_status", "code"), ERROR_CASES)
def test_error_status(gw: Gateway, status: int, error_class: type[openai.APIStatusError], client_status: int,
                      code: str | None, stream: bool) -> None:
    sim = gw.sim("gemini")
    retry_after = 7 if status == 429 else None
    sim.faults.extend([Fault(status=status, retry_after=retry_after)] * 5)  # enough for any retries
    before = len(sim.received)
    with pytest.raises(error_class) as caught:
        response = gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                       stream=stream)
        if stream:
            list(response)  # a stream failing before its first byte is an HTTP error, not a 200
    error = caught.value
    assert type(error) is error_class and error.status_code == client_status
    assert error_of(error)["code"] == code
    assert UPSTREAM_MESSAGES.get(status, f"Simulated error {status}.") in error_of(error)["message"]
    assert error.response.headers.get("retry-after") == ("7" if status == 429 else None)
    assert len(sim.received) > before
    assert_gemini_call(sim.received[-1], stream)


def test_embeddings_error(gw: Gateway) -> None:
    gw.sim("gemini").faults.extend([Fault(status=429, retry_after=3)] * 5)
    with pytest.raises(openai.RateLimitError) as caught:
        gw.client().embeddings.create(input=TEXTS, model=EMBEDDING_MODEL)
    assert caught.value.response.headers["retry-after"] == "3"
    assert gw.sim("gemini").received[-1].path.endswith(":batchEmbedContents")


def test_mid_stream_error_event_ends_the_stream_with_an_error(gw: Gateway) -> None:
    sim = gw.sim("gemini")
    # Two words, then Gemini's `{"error": {...}}` event.
    sim.faults.append(Fault(status=503, drop_after_chunks=2, delay_between_chunks=0.02))
    stream = gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}],
                                                 stream=True)
    received: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, openai.APIStatusError)  # the 200 had gone out: an error event
    assert error_of(caught.value) == {"message": UPSTREAM_MESSAGES[503],
                                      "type": "server_error", "param": None, "code": "overloaded"}
    assert streamed_text(received) == "This is"
    assert finish_reasons(received) == [] and all(c.model == MODEL for c in received)
    assert_gemini_call(sim.received[-1], stream=True)


def test_upstream_stream_cut_without_a_finish_is_an_error(gw: Gateway) -> None:
    sim = gw.sim("gemini")
    sim.faults.append(Fault(drop_after_chunks=2, delay_between_chunks=0.02))
    stream = gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}],
                                                 stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert error_of(caught.value)["type"] in ("server_error", "upstream_error")
