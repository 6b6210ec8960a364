"""The `openai` package's Responses API against the gateway and the simulators: gpt-4o
natively (Azure with `responses_api: true`), Claude, Gemini and a vLLM model translated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.harness import KEY_B, Gateway, table_dict

MODELS = ["gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro", "Llama-3.1-70B-Instruct"]
TOOLS: Any = [{"type": "function", "name": "get_weather", "description": "The weather in a city", "strict": True,
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                              "additionalProperties": False}}]


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    table = table_dict()
    table["providers"]["azure"]["responses_api"] = True
    table["keys"][1]["models"] = ["*"]
    with Gateway(table) as gateway:
        yield gateway


@pytest.mark.parametrize("model", MODELS)
def test_text(gw: Gateway, model: str) -> None:
    response = gw.client().responses.create(model=model, input="Hello there", instructions="Be brief.")
    assert response.status == "completed" and response.model == model
    assert "Hello there" in response.output_text
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_streamed_text(gw: Gateway, model: str) -> None:
    with gw.client().responses.stream(model=model, input="Stream to me") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text and "Stream to me" in final.output_text
    assert final.usage is not None and final.usage.total_tokens > 0
    assert gw.client().responses.retrieve(final.id).output_text == final.output_text


@pytest.mark.parametrize("model", MODELS)
def test_function_round_trip_stateless(gw: Gateway, model: str) -> None:
    client = gw.client()
    first = client.responses.create(model=model, input="What is the weather in Paris?", tools=TOOLS, store=False)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in call.arguments
    second = client.responses.create(model=model, tools=TOOLS, store=False, input=[
        {"role": "user", "content": "What is the weather in Paris?"}, *[item.model_dump() for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    assert "sunny, 21 C" in second.output_text
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)  # store: false keeps nothing


@pytest.mark.parametrize("model", MODELS)
def test_function_round_trip_with_previous_response_id(gw: Gateway, model: str) -> None:
    client = gw.client()
    first = client.responses.create(model=model, input="What is the weather in Paris?", tools=TOOLS)
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(model=model, tools=TOOLS, previous_response_id=first.id, input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}])
    assert "rainy" in second.output_text and second.previous_response_id == first.id
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["function_call_output"]
    assert client.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


class Weather(BaseModel):
    city: str
    degrees: int


@pytest.mark.parametrize("model", MODELS)
def test_parse_with_a_pydantic_model(gw: Gateway, model: str) -> None:
    parsed = gw.client().responses.parse(model=model, input="Weather in Rome as JSON", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)


def test_reasoning_on_a_model_that_reasons(gw: Gateway) -> None:
    response = gw.client().responses.create(model="gpt-4o", input="Think first", include=[
        "reasoning.encrypted_content"], reasoning={"effort": "low", "summary": "auto"})
    reasoning = next(item for item in response.output if item.type == "reasoning")
    assert reasoning.summary and reasoning.encrypted_content
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o", "claude-3-5-sonnet"])
def test_another_keys_response_is_refused(gw: Gateway, model: str) -> None:
    mine = gw.client().responses.create(model=model, input="secret")
    other = gw.client(KEY_B)
    for attempt in (lambda: other.responses.retrieve(mine.id), lambda: other.responses.delete(mine.id),
                    lambda: other.responses.input_items.list(mine.id),
                    lambda: other.responses.create(model=model, input="more", previous_response_id=mine.id)):
        with pytest.raises(openai.NotFoundError) as caught:
            attempt()
        assert caught.value.body["param"] == "response_id"  # type: ignore[index]
    assert gw.client().responses.retrieve(mine.id).id == mine.id


def test_built_in_tools_pass_to_native_upstreams_and_are_refused_elsewhere(gw: Gateway) -> None:
    client = gw.client()
    assert client.responses.create(model="gpt-4o", input="hi", tools=[{"type": "web_search"}]).status == "completed"
    assert gw.sim("azure").received[-1].json()["tools"] == [{"type": "web_search"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="claude-3-5-sonnet", input="hi", tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0].type" and "web_search" in caught.value.message  # type: ignore[index]


def test_usage_is_metered_like_chat(gw: Gateway) -> None:
    response = gw.client().responses.create(model="claude-3-5-sonnet", input="count me")
    rows = gw.client().get("/usage", cast_to=object)
    assert isinstance(rows, dict) and any(row.get("model") == "claude-3-5-sonnet" for row in rows["data"])
    assert response.usage is not None
