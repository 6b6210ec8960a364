"""LangChain's ChatOpenAI against the shipped route table (every provider a simulator that
enforces the real APIs' rules): a bind_tools agent loop with reasoning_effort on Gemini 3,
two tool turns, where LangChain sends back only content and tool_calls; and
with_structured_output with each of its three methods on every chat model."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.harness import Gateway

ROUTES = Path(__file__).resolve().parents[2] / "routes.yaml"
KEY = "sk-langchain-test"
TABLE: dict[str, Any] = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
CHAT_MODELS = [m for m, spec in TABLE["models"].items() if spec.get("type", "chat") == "chat"]


class City(BaseModel):
    """A city and what it is known for."""

    name: str
    country: str
    population: int


CITY_SCHEMA = {"title": "City", "description": "A city.", "type": "object",
               "properties": {"name": {"type": "string"}}, "required": ["name"]}


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    if city.lower() == "paris":
        return '{"temp_c": 21, "next": "call get_weather for Berlin too"}'
    return '{"temp_c": 17}'


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    table = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    table["keys"].append({"name": "langchain", "key": KEY, "models": ["*"]})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEMO_API_KEY_SHA256", hashlib.sha256(b"unused").hexdigest())
        env.delenv("REDIS_URL", raising=False)
        with Gateway(table, str(ROUTES)) as gateway:
            yield gateway


def chat_model(gw: Gateway, model: str, **kwargs: Any) -> ChatOpenAI:
    endpoint = "/vision" if "llava" in model else "/v2"
    return ChatOpenAI(model=model, base_url=gw.url(endpoint), api_key=KEY, max_retries=0,  # type: ignore[arg-type]
                      **kwargs)


@pytest.mark.parametrize("model", ["gemini-3-pro", "gemini-3-flash-EU"])
def test_agent_loop_with_reasoning_effort_on_gemini_3(gw: Gateway, model: str) -> None:
    llm = chat_model(gw, model, reasoning_effort="low").bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What is the weather in Paris?")]
    tool_turns = 0
    for _ in range(4):
        answer = llm.invoke(messages)
        assert isinstance(answer, AIMessage)
        messages.append(answer)
        if not answer.tool_calls:
            break
        tool_turns += 1
        for call in answer.tool_calls:
            messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
    assert tool_turns == 2
    assert isinstance(messages[-1], AIMessage) and messages[-1].content
    # What LangChain sent back was content and tool_calls only; the signatures reached Gemini.
    last = gw.sim("gemini").received[-1].json()
    calls = [p for c in last["contents"] for p in c["parts"] if "functionCall" in p]
    assert len(calls) == 2 and all(p["thoughtSignature"] != "skip_thought_signature_validator" for p in calls)


# LangChain itself turns json_schema into function_calling for model names it knows to lack it (gpt-35-turbo).
@pytest.mark.filterwarnings("ignore:Cannot use method='json_schema'")
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
@pytest.mark.parametrize("model", CHAT_MODELS)
def test_with_structured_output_on_every_chat_model(gw: Gateway, model: str, method: str) -> None:
    structured = chat_model(gw, model).with_structured_output(City, method=method)  # type: ignore[arg-type]
    city = structured.invoke("Tell me about Paris.")
    assert isinstance(city, City)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_with_structured_output_json_mode_on_every_chat_model(gw: Gateway, model: str) -> None:
    structured = chat_model(gw, model).with_structured_output(CITY_SCHEMA, method="json_mode")
    assert isinstance(structured.invoke("Answer in JSON: tell me about Paris."), dict)
