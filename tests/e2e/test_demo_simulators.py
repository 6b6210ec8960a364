"""The shipped route table as `llm-router demo` serves it (every provider a simulator),
with the stock `openai` client: structured outputs with `parse()` and a Pydantic model,
JSON mode, `n` choices, embeddings of the dimension `/models` advertises, and the demo
key's rate limits."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
import yaml
from pydantic import BaseModel, Field

from tests.harness import Gateway

ROUTES = Path(__file__).resolve().parents[2] / "routes.yaml"
DEMO_KEY = "sk-demo-simulators-test"
UNLIMITED_KEY = "sk-unlimited-simulators-test"  # for every test but the rate-limit one
# The chat models whose simulators honour response_format (OpenAI, Azure, vLLM, Gemini).
STRUCTURED_MODELS = ["gpt-4o", "gpt-35-turbo", "Llama-3.1-70B-Instruct", "Mistral-Large-2407",
                     "gemini-1.5-pro", "gemini-1.5-flash"]
N_MODELS = ["gpt-4o", "Llama-3.1-70B-Instruct", "gemini-1.5-flash"]
EMBEDDING_MODELS = ["jina-embeddings-v2-base-de", "text-embedding-bge-m3", "text-embedding-ada-002",
                    "text-embedding-004"]


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class Participant(BaseModel):
    name: str
    email: str | None
    role: Literal["organiser", "guest"]


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[Participant]
    colour: Colour
    duration_minutes: int = Field(ge=15, le=240)
    tags: list[str]


class Step(BaseModel):
    explanation: str
    output: str


class MathReasoning(BaseModel):
    steps: list[Step]
    final_answer: str


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    table: dict[str, Any] = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    table["keys"].append({"name": "simulators-test", "key": UNLIMITED_KEY, "models": ["*"]})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEMO_API_KEY_SHA256", hashlib.sha256(DEMO_KEY.encode()).hexdigest())
        env.setenv("ROUTER_ADMIN_KEY", "sk-admin-simulators-test")
        env.delenv("REDIS_URL", raising=False)  # in-process state: the rate-limit count is this test's own
        with Gateway(table, str(ROUTES)) as gateway:
            yield gateway


@pytest.mark.parametrize("model", STRUCTURED_MODELS)
@pytest.mark.parametrize("schema", [CalendarEvent, MathReasoning], ids=lambda s: s.__name__)
def test_parse_with_a_pydantic_model(gw: Gateway, model: str, schema: type[BaseModel]) -> None:
    completion = gw.client(UNLIMITED_KEY).chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Alice and Bob go to a science fair on Friday."}],
        response_format=schema)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, schema)
    assert schema.model_validate_json(message.content or "") == message.parsed


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "claude-3-5-sonnet-v2-US"])
def test_parse_on_anthropic_models(gw: Gateway, model: str) -> None:
    """Anthropic has no response_format: the translator forces one tool with the schema,
    whose input the simulator fills from the schema like any other."""
    completion = gw.client(UNLIMITED_KEY).chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Plan a meeting"}], response_format=CalendarEvent)
    assert isinstance(completion.choices[0].message.parsed, CalendarEvent)


def test_parse_fills_nested_lists_and_bounds(gw: Gateway) -> None:
    event = gw.client(UNLIMITED_KEY).chat.completions.parse(
        model="gpt-4o", messages=[{"role": "user", "content": "Plan a meeting"}],
        response_format=CalendarEvent).choices[0].message.parsed
    assert event is not None and event.participants and event.participants[0].role in ("organiser", "guest")
    assert 15 <= event.duration_minutes <= 240 and event.colour in Colour


@pytest.mark.parametrize("model", STRUCTURED_MODELS)
def test_json_mode_answers_a_json_object(gw: Gateway, model: str) -> None:
    completion = gw.client(UNLIMITED_KEY).chat.completions.create(
        model=model, response_format={"type": "json_object"}, max_tokens=5,
        messages=[{"role": "user", "content": "Answer in JSON: what is Open Telekom Cloud?"}])
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", N_MODELS)
def test_n_choices(gw: Gateway, model: str) -> None:
    completion = gw.client(UNLIMITED_KEY).chat.completions.create(
        model=model, n=3, messages=[{"role": "user", "content": "Hello"}])
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content and c.finish_reason == "stop" for c in completion.choices)


@pytest.mark.parametrize("model", N_MODELS)
def test_n_choices_streamed(gw: Gateway, model: str) -> None:
    texts: dict[int, str] = {}
    finished: list[int] = []
    for chunk in gw.client(UNLIMITED_KEY).chat.completions.create(
            model=model, n=2, stream=True, messages=[{"role": "user", "content": "Hello"}]):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finished.append(choice.index)
    assert sorted(texts) == [0, 1] and all(texts.values())
    assert sorted(finished) == [0, 1]


def test_n_with_tools_gives_each_choice_its_own_call(gw: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    completion = gw.client(UNLIMITED_KEY).chat.completions.create(
        model="gpt-4o", n=2, tools=tools, messages=[{"role": "user", "content": "Weather in Hamburg?"}])
    calls = [c.message.tool_calls[0] for c in completion.choices if c.message.tool_calls]
    assert len(calls) == 2 and calls[0].id != calls[1].id
    assert all(json.loads(c.function.arguments) == {"city": "Hamburg"} for c in calls)


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embedding_dimension_is_the_advertised_hidden_size(gw: Gateway, model: str) -> None:
    client = gw.client(UNLIMITED_KEY)
    advertised = client.models.retrieve(model).model_extra["meta_data"]["hidden_size"]  # type: ignore[index]
    vectors = client.embeddings.create(model=model, input=["one text", "another text"]).data
    assert [len(v.embedding) for v in vectors] == [advertised, advertised]


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
def test_embedding_dimensions_when_asked(gw: Gateway, model: str) -> None:
    vectors = gw.client(UNLIMITED_KEY).embeddings.create(model=model, input="one text", dimensions=256).data
    assert len(vectors[0].embedding) == 256


def test_the_demo_key_shows_rate_limit_headers_then_a_429(gw: Gateway) -> None:
    client = gw.client(DEMO_KEY)
    remaining = []
    for _ in range(60):
        raw = client.chat.completions.with_raw_response.create(
            model="Llama-3.1-70B-Instruct", max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
        assert raw.headers["x-ratelimit-limit-requests"] == "60"
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == list(range(59, -1, -1))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="Llama-3.1-70B-Instruct", max_tokens=1,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert float(caught.value.response.headers["retry-after"]) > 0
