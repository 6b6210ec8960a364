"""Anthropic behind the OpenAI API, end to end: the stock `openai` client against the
gateway and the Anthropic simulator. Each test checks both sides: what the client
got, and what the simulator received (`/v1/messages`, headers, the translated body)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from providers.simulators.anthropic import answer_message
from providers.simulators.common import Fault, Received
from tests.harness import Gateway, table_dict

MODEL = "claude-3-5-sonnet"
UPSTREAM_MODEL = "claude-3-5-sonnet-20240620"
UPSTREAM_KEY = "anthropic-secret-test"
# Retries and cooldowns are the resilience layer's business: off here, so that each
# scripted fault is answered once and error tests do not take the target out.
NO_RESILIENCE: dict[str, Any] = {"max_retries": 0, "cooldown": {"failures": 1000, "duration": 0}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n a tiny png").decode()
WEATHER_TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "format": {"type": "string", "enum": ["celsius", "fahrenheit"],
                   "description": "The temperature unit to use. Infer this from the users location."}},
        "required": ["location", "format"]}}}]
WEATHER_SCHEMA = WEATHER_TOOLS[0]["function"]["parameters"]


def anthropic_table() -> dict[str, Any]:
    table = table_dict()
    table["providers"]["anthropic"].update(NO_RESILIENCE)
    return table


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(anthropic_table()) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def no_leftover_faults(gw: Gateway) -> Iterator[None]:
    gw.sim("anthropic").faults.clear()
    yield
    gw.sim("anthropic").faults.clear()


def chat(gw: Gateway, **kwargs: Any) -> tuple[Any, Received]:
    """One chat completion (streams are read to the end) and the request the simulator got."""
    sim = gw.sim("anthropic")
    before = len(sim.received)
    response = gw.client().chat.completions.create(model=MODEL, **kwargs)
    if kwargs.get("stream"):
        response = list(response)
    assert len(sim.received) == before + 1
    return response, sim.received[-1]


def assert_anthropic_call(received: Received) -> dict[str, Any]:
    assert received.method == "POST" and received.path == "/v1/messages"
    assert received.headers["x-api-key"] == UPSTREAM_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in received.headers
    body: dict[str, Any] = received.json()
    assert body["model"] == UPSTREAM_MODEL
    return body


def simulator_usage(received: Received) -> dict[str, int]:
    """The simulator's own token counts for this request (its answers are deterministic)."""
    usage = answer_message(received.json(), UPSTREAM_MODEL)["usage"]
    return {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["input_tokens"] + usage["output_tokens"]}


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def error_of(exc: openai.APIError) -> dict[str, Any]:
    """The OpenAI error object the client was given."""
    assert isinstance(exc.body, dict)
    return exc.body


def tool_call_deltas(chunks: list[Any]) -> list[Any]:
    return [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]


# --- text ------------------------------------------------------------------------


def test_plain_chat_lifts_system_and_merges_turns(gw: Gateway) -> None:
    response, received = chat(gw, messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is Open"},
        {"role": "user", "content": [{"type": "text", "text": "Telekom Cloud?"}]},
        {"role": "assistant", "content": "Shall I answer briefly?"},
        {"role": "developer", "content": "Answer in one sentence."},
        {"role": "user", "content": "Yes, briefly"}])
    assert response.object == "chat.completion" and response.model == MODEL
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content.endswith("You said: Yes, briefly")
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) == (
        simulator_usage(received))
    body = assert_anthropic_call(received)
    assert body["system"] == [{"type": "text", "text": "You are a helpful assistant."},
                              {"type": "text", "text": "Answer in one sentence."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is Open"},
                                     {"type": "text", "text": "Telekom Cloud?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Shall I answer briefly?"}]},
        {"role": "user", "content": [{"type": "text", "text": "Yes, briefly"}]}]
    assert body["max_tokens"] == 8192  # the model's max_output_length: Anthropic requires one
    assert "stream" not in body


def test_sampling_parameters_are_translated(gw: Gateway) -> None:
    response, received = chat(
        gw, messages=[{"role": "user", "content": "Hello"}], max_completion_tokens=100, temperature=0.3,
        top_p=0.9, stop="never-said", user="user-42", n=1, seed=7, presence_penalty=0, logprobs=False,
        stream_options=None, store=False, metadata={"team": "a"}, service_tier="auto",
        extra_body={"reasoning_effort": None, "audio": None, "top_k": None})  # null: as if absent
    assert response.choices[0].finish_reason == "stop"
    body = assert_anthropic_call(received)
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {
        "max_tokens": 100, "temperature": 0.3, "top_p": 0.9, "stop_sequences": ["never-said"],
        "metadata": {"user_id": "user-42"}}


@pytest.mark.parametrize(("parameters", "param"), [
    ({"temperature": 1.5}, "temperature"),
    ({"n": 2}, "n"),
    ({"logit_bias": {"42": 10}}, "logit_bias"),
    ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
])
def test_parameters_without_equivalent_are_refused_by_name(gw: Gateway, parameters: dict[str, Any],
                                                           param: str) -> None:
    sim = gw.sim("anthropic")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], **parameters)
    assert caught.value.status_code == 400
    assert error_of(caught.value)["param"] == param and error_of(caught.value)["type"] == "invalid_request_error"
    assert len(sim.received) == before  # refused before any upstream call


def test_streaming_text(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "user", "content": "Hello there"}], stream=True)
    expected = answer_message(received.json(), UPSTREAM_MODEL)["content"][0]["text"]
    assert streamed_text(chunks) == expected
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(chunks) > 5  # word by word, as the events came
    assert finish_reasons(chunks) == ["stop"]
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)  # not asked for
    body = assert_anthropic_call(received)
    assert body["stream"] is True


def test_stream_include_usage_ends_with_the_simulators_counts(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "Count my words please"}],
                            stream=True, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == [] and last.model == MODEL
    assert last.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) == (
        simulator_usage(received))
    assert all(c.usage is None for c in chunks[:-1])
    assert finish_reasons(chunks) == ["stop"]
    body = assert_anthropic_call(received)
    assert "stream_options" not in body  # Anthropic streams always carry usage


# --- finish reasons --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_length_with_small_max_tokens(gw: Gateway, stream: bool) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Tell me a long story"}],
                              max_tokens=3, stream=stream)
    text = streamed_text(response) if stream else response.choices[0].message.content
    finish = finish_reasons(response) if stream else [response.choices[0].finish_reason]
    assert text == "This is a" and finish == ["length"]
    assert assert_anthropic_call(received)["max_tokens"] == 3


@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_stop_on_a_stop_sequence(gw: Gateway, stream: bool) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Hello"}], stop=["simulated", "x"],
                              stream=stream)
    text = streamed_text(response) if stream else response.choices[0].message.content
    finish = finish_reasons(response) if stream else [response.choices[0].finish_reason]
    assert text == "This is a " and finish == ["stop"]
    assert assert_anthropic_call(received)["stop_sequences"] == ["simulated", "x"]


# --- tools -----------------------------------------------------------------------


def test_one_tool_call(gw: Gateway) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "What's the weather in Hamburg?"}],
                              tools=WEATHER_TOOLS)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and response.model == MODEL
    assert choice.message.content == "I'll use get_current_weather."
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_current_weather"
    assert json.loads(call.function.arguments) == {"location": "Hamburg", "format": "celsius"}
    body = assert_anthropic_call(received)
    assert body["tools"] == [{"name": "get_current_weather", "description": "Get the current weather",
                              "input_schema": WEATHER_SCHEMA}]
    assert "tool_choice" not in body  # auto with parallel calls is the API's default
    upstream_call = answer_message(received.json(), UPSTREAM_MODEL)["content"][1]
    assert call.id == upstream_call["id"]


def test_two_tool_calls_in_one_turn(gw: Gateway) -> None:
    response, received = chat(gw, messages=[{"role": "user", "content": "Weather in two cities, please"}],
                              tools=WEATHER_TOOLS)
    assert response.choices[0].finish_reason == "tool_calls"
    calls = response.choices[0].message.tool_calls
    upstream = [b for b in answer_message(received.json(), UPSTREAM_MODEL)["content"] if b["type"] == "tool_use"]
    assert [c.id for c in calls] == [b["id"] for b in upstream] and calls[0].id != calls[1].id
    assert [c.function.name for c in calls] == ["get_current_weather"] * 2
    assert [json.loads(c.function.arguments)["location"] for c in calls] == ["Hamburg", "Paris"]


def test_two_tool_calls_streamed(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "user", "content": "Weather in two cities, please"}],
                            tools=WEATHER_TOOLS, stream=True, stream_options={"include_usage": True})
    deltas = tool_call_deltas(chunks)
    announced = [d for d in deltas if d.id is not None]
    upstream = [b for b in answer_message(received.json(), UPSTREAM_MODEL)["content"] if b["type"] == "tool_use"]
    # Each call announced once, with its index, id and name; fragments carry only the index.
    assert [(d.index, d.id, d.type, d.function.name, d.function.arguments) for d in announced] == [
        (i, b["id"], "function", "get_current_weather", "") for i, b in enumerate(upstream)]
    assert all(d.function.name is None for d in deltas if d.id is None)
    arguments = {i: "".join(d.function.arguments or "" for d in deltas if d.index == i) for i in (0, 1)}
    assert sum(1 for d in deltas if d.id is None) > 2  # the arguments came in fragments
    assert [json.loads(arguments[i]) for i in (0, 1)] == [b["input"] for b in upstream]
    assert streamed_text(chunks) == "I'll use get_current_weather and get_current_weather."
    assert finish_reasons(chunks) == ["tool_calls"]
    assert chunks[-1].usage.total_tokens == simulator_usage(received)["total_tokens"]
    assert all(c.model == MODEL for c in chunks)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_without_arguments_has_an_empty_object(gw: Gateway, stream: bool) -> None:
    now = {"type": "function", "function": {"name": "get_time", "description": "The time now"}}
    response, received = chat(gw, messages=[{"role": "user", "content": "What time is it?"}], tools=[now],
                              tool_choice="required", stream=stream)
    if stream:
        deltas = tool_call_deltas(response)
        assert (deltas[0].index, deltas[0].function.name) == (0, "get_time")
        arguments = "".join(d.function.arguments or "" for d in deltas)
    else:
        arguments = response.choices[0].message.tool_calls[0].function.arguments
    assert arguments == "{}"  # clients parse it: never an empty string
    body = assert_anthropic_call(received)
    assert body["tools"] == [{"name": "get_time", "description": "The time now",
                              "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(("tool_choice", "parallel", "expected"), [
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_current_weather"}}, None,
     {"type": "tool", "name": "get_current_weather"}),
    ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("none", None, {"type": "none"}),
])
def test_tool_choice(gw: Gateway, tool_choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    extra = {} if parallel is None else {"parallel_tool_calls": parallel}
    response, received = chat(gw, messages=[{"role": "user", "content": "Weather in two cities?"}],
                              tools=WEATHER_TOOLS, tool_choice=tool_choice, **extra)
    assert assert_anthropic_call(received)["tool_choice"] == expected
    calls = response.choices[0].message.tool_calls or []
    expected_calls = {"none": 0, "auto": 1}.get(expected["type"], 2)  # "two" asks for two, unless disabled
    assert len(calls) == expected_calls
    assert response.choices[0].finish_reason == ("tool_calls" if calls else "stop")


def test_tool_result_round_trip_as_in_the_guide(gw: Gateway) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "Don't make assumptions about what values to plug into functions. "
                                      "Ask for clarification if a user request is ambiguous."},
        {"role": "user", "content": "What's the weather like today in Hamburg"}]
    chat_response, _ = chat(gw, messages=messages, tools=WEATHER_TOOLS)
    assistant_message = chat_response.choices[0].message
    messages.append(assistant_message)  # the guide appends the pydantic message itself
    call = assistant_message.tool_calls[0]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "12 degrees celsius, rain"})
    answer, received = chat(gw, messages=messages, tools=WEATHER_TOOLS)
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None
    assert "the tool said 12 degrees celsius, rain" in answer.choices[0].message.content
    body = assert_anthropic_call(received)
    assert body["system"][0]["text"].startswith("Don't make assumptions")
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll use get_current_weather."},
            {"type": "tool_use", "id": call.id, "name": "get_current_weather",
             "input": {"location": "Hamburg", "format": "celsius"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "12 degrees celsius, rain"}]}]


def test_two_tool_results_go_in_one_user_turn(gw: Gateway) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in two cities, please"}]
    first, _ = chat(gw, messages=messages, tools=WEATHER_TOOLS)
    calls = first.choices[0].message.tool_calls
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"{n} degrees"} for n, c in enumerate(calls)]
    answer, received = chat(gw, messages=messages, tools=WEATHER_TOOLS, stream=True)
    assert "the tool said 0 degrees 1 degrees" in streamed_text(answer)
    assert finish_reasons(answer) == ["stop"]
    last_turn = assert_anthropic_call(received)["messages"][-1]
    assert last_turn == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": calls[0].id, "content": "0 degrees"},
        {"type": "tool_result", "tool_use_id": calls[1].id, "content": "1 degrees"}]}


def test_history_from_another_model_is_accepted(gw: Gateway) -> None:
    """Tool call ids minted elsewhere, an empty tool result, and no tools on the follow-up."""
    call = {"id": "functions.get_current_weather:0", "type": "function",
            "function": {"name": "get_current_weather", "arguments": '{"location": "Hamburg"}'}}
    answer, received = chat(gw, messages=[
        {"role": "user", "content": "Weather in Hamburg?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": ""},
        {"role": "user", "content": "Nothing came back. Guess."}])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None
    body = assert_anthropic_call(received)
    assert body["messages"][1]["content"][0]["id"] == "functions_get_current_weather_0"
    assert body["messages"][2]["content"][0] == {"type": "tool_result",
                                                 "tool_use_id": "functions_get_current_weather_0"}
    assert body["tool_choice"] == {"type": "none"}


@pytest.mark.parametrize("stream", [False, True])
def test_response_format_json_schema_comes_back_as_content(gw: Gateway, stream: bool) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response, received = chat(gw, messages=[{"role": "user", "content": "Name a city"}], stream=stream,
                              response_format={"type": "json_schema", "json_schema": {"name": "answer",
                                                                                      "schema": schema}})
    text = streamed_text(response) if stream else response.choices[0].message.content
    finish = finish_reasons(response) if stream else [response.choices[0].finish_reason]
    assert json.loads(text) == {"city": "Hamburg"} and finish == ["stop"]
    body = assert_anthropic_call(received)
    assert body["tools"] == [{"name": "answer", "input_schema": schema,
                              "description": "Answer with this tool: its input is the answer."}]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


# --- images ----------------------------------------------------------------------


def image_message(url: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "What's in this image?"},
                                         {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]


IMAGES = {"image/png": PNG, "image/jpeg": base64.b64encode(b"\xff\xd8\xff\xe0 a tiny jpeg").decode(),
          "image/gif": base64.b64encode(b"GIF89a a tiny gif").decode(),
          "image/webp": base64.b64encode(b"RIFF\x10\x00\x00\x00WEBPVP8 a tiny webp").decode()}


@pytest.mark.parametrize(("declared", "media_type"), [
    ("image/png", "image/png"), ("image/jpeg", "image/jpeg"), ("image/gif", "image/gif"),
    ("image/webp", "image/webp"), ("image/jpg", "image/jpeg"),
    ("image/jpeg", "image/png"),  # the guide's encoder labels any file jpeg; the API checks the bytes
])
def test_data_uri_image_becomes_a_base64_block(gw: Gateway, declared: str, media_type: str) -> None:
    data = IMAGES[media_type]
    response, received = chat(gw, messages=image_message(f"data:{declared};base64,{data}"), max_tokens=300)
    assert "What's in this image?" in response.choices[0].message.content
    assert assert_anthropic_call(received)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What's in this image?"},
        {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}]}]


def test_https_image_url_is_passed_as_a_url_source(gw: Gateway) -> None:
    url = "https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/boardwalk.jpg/2560px-boardwalk.jpg"
    chunks, received = chat(gw, messages=image_message(url), stream=True)
    assert finish_reasons(chunks) == ["stop"]
    image = assert_anthropic_call(received)["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "url", "url": url}}


@pytest.mark.parametrize("url", ["data:image/bmp;base64," + base64.b64encode(b"BM a bmp").decode(),
                                 "https://127.0.0.1/cat.png",
                                 "http://example.com/cat.png"])
def test_unusable_images_are_refused_before_the_upstream(gw: Gateway, url: str) -> None:
    sim = gw.sim("anthropic")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError):
        gw.client().chat.completions.create(model=MODEL, messages=image_message(url))
    assert len(sim.received) == before


# --- errors ----------------------------------------------------------------------

ERROR_CASES = [
    # upstream status, what the client raises, the status it sees, Anthropic's error type as `code`
    (400, openai.BadRequestError, 400, "invalid_request_error"),
    (401, openai.InternalServerError, 502, "authentication_error"),  # our upstream key, not the caller's
    (403, openai.InternalServerError, 502, "permission_error"),
    (404, openai.NotFoundError, 404, "not_found_error"),
    (413, openai.APIStatusError, 413, "request_too_large"),
    (429, openai.RateLimitError, 429, "rate_limit_error"),
    (500, openai.InternalServerError, 500, "api_error"),
    (529, openai.InternalServerError, 503, "overloaded_error"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "error_class", "client_status", "code"), ERROR_CASES)
def test_error_status(gw: Gateway, status: int, error_class: type[openai.APIStatusError], client_status: int,
                      code: str, stream: bool) -> None:
    sim = gw.sim("anthropic")
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
    assert error_of(error)["code"] == code and "anthropic: " in error_of(error)["message"]
    assert error.response.headers.get("retry-after") == ("7" if status == 429 else None)
    assert len(sim.received) > before
    assert_anthropic_call(sim.received[-1])


def test_mid_stream_error_event_ends_the_stream_with_an_error(gw: Gateway) -> None:
    sim = gw.sim("anthropic")
    # message_start, content_block_start, ping, two words, then Anthropic's `error` event.
    sim.faults.append(Fault(status=529, drop_after_chunks=5, delay_between_chunks=0.05))
    stream = gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}],
                                                 stream=True)
    received: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, openai.APIStatusError)  # the 200 had gone out: an error event
    assert caught.value.body == {"message": "anthropic: Overloaded", "type": "server_error", "param": None,
                                 "code": "overloaded_error"}
    assert streamed_text(received) == "This is"
    assert finish_reasons(received) == [] and all(c.model == MODEL for c in received)
    assert_anthropic_call(sim.received[-1])


def test_upstream_stream_cut_without_a_stop_is_an_error(gw: Gateway) -> None:
    sim = gw.sim("anthropic")
    sim.faults.append(Fault(drop_after_chunks=5, delay_between_chunks=0.02))
    stream = gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello"}],
                                                 stream=True)
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert error_of(caught.value)["type"] in ("server_error", "upstream_error")
