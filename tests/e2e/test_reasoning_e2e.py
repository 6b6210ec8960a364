"""Reasoning models and structured outputs on the shipped route table, every provider a
simulator that enforces the real APIs' rules, with the stock `openai` client: reasoning_effort
streamed and not, a two-step tool loop with thinking that sends back only what the SDK
returned, parse() and json_object on every chat model, temperature + top_p to Claude 4.5,
drop_params, and a forged tool-call id from another key."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from pydantic import BaseModel

from tests.harness import Gateway
from tests.state.helpers import SHARED_REDIS, delete_prefix, new_prefix

ROUTES = Path(__file__).resolve().parents[2] / "routes.yaml"
KEY = "sk-reasoning-test-a"
OTHER_KEY = "sk-reasoning-test-b"
TABLE: dict[str, Any] = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
CHAT_MODELS = [m for m, spec in TABLE["models"].items() if spec.get("type", "chat") == "chat"]
# Claude direct and on Vertex, Gemini on the Gemini API and on Vertex AI.
REASONING_MODELS = ["claude-sonnet-4-5", "claude-sonnet-4-5-US", "claude-opus-4-6", "gemini-2.5-flash",
                    "gemini-2.5-pro-EU", "gemini-3-pro", "gemini-3-flash-EU"]
TOOL_LOOP_MODELS = ["claude-sonnet-4-5", "claude-sonnet-4-5-US", "claude-sonnet-4-6", "gemini-3-pro",
                    "gemini-3-flash-EU", "gemini-2.5-flash"]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class City(BaseModel):
    name: str
    country: str
    population: int


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    table = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    table["keys"] += [{"name": "reasoning-a", "key": KEY, "models": ["*"]},
                      {"name": "reasoning-b", "key": OTHER_KEY, "models": ["*"]}]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEMO_API_KEY_SHA256", hashlib.sha256(b"unused").hexdigest())
        env.delenv("REDIS_URL", raising=False)
        with Gateway(table, str(ROUTES)) as gateway:
            yield gateway


def reasoning_of(message: Any) -> str:
    return str((message.model_extra or {}).get("reasoning_content") or "")


@pytest.mark.parametrize("model", REASONING_MODELS)
def test_reasoning_effort_gives_reasoning_and_its_tokens(gw: Gateway, model: str) -> None:
    completion = gw.client(KEY).chat.completions.create(
        model=model, reasoning_effort="low", messages=[{"role": "user", "content": "Why is the sky blue?"}])
    assert completion.choices[0].message.content
    assert reasoning_of(completion.choices[0].message)
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert 0 < (completion.usage.completion_tokens_details.reasoning_tokens or 0) <= completion.usage.completion_tokens


@pytest.mark.parametrize("model", REASONING_MODELS)
def test_reasoning_effort_streamed(gw: Gateway, model: str) -> None:
    stream = gw.client(KEY).chat.completions.create(
        model=model, reasoning_effort="medium", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Why is the sky blue?"}])
    reasoning, content, usage = "", "", None
    for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += str((delta.model_extra or {}).get("reasoning_content") or "")
            content += delta.content or ""
        usage = chunk.usage or usage
    assert reasoning and content
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.completion_tokens_details.reasoning_tokens or 0) > 0


def tool_loop(gw: Gateway, key: str, model: str, stream: bool = False) -> list[Any]:
    """Two tool turns then the answer, each with thinking, sending back exactly what the SDK
    returned: content and tool_calls (the message's own fields, no extra ones)."""
    client = gw.client(key)
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    answers = []
    results = ['{"temp_c": 21, "next": "call get_weather for Berlin too"}', '{"temp_c": 17}', None]
    for result in results:
        if stream:  # the SDK's stream helper puts the deltas together as it would for the client
            with client.chat.completions.stream(model=model, messages=messages, tools=[WEATHER],
                                                reasoning_effort="low") as events:
                reasoning = "".join(str((e.chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or "")
                                    for e in events if e.type == "chunk" and e.chunk.choices)
                completion = events.get_final_completion()
            assert reasoning
        else:
            completion = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER],
                                                        reasoning_effort="low")
        message = completion.choices[0].message
        answers.append(message)
        if not message.tool_calls or result is None:
            break
        messages.append({"role": "assistant", "content": message.content,
                         "tool_calls": [call.model_dump(exclude_none=True) for call in message.tool_calls]})
        messages += [{"role": "tool", "tool_call_id": call.id, "content": result} for call in message.tool_calls]
    return answers


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-5-US", "gemini-3-pro", "gemini-3-flash-EU"])
def test_a_streamed_tool_loop_with_thinking(gw: Gateway, model: str) -> None:
    answers = tool_loop(gw, KEY, model, stream=True)
    assert [bool(a.tool_calls) for a in answers] == [True, True, False] and answers[-1].content


@pytest.mark.parametrize("model", TOOL_LOOP_MODELS)
def test_a_tool_loop_with_thinking_continues_on_what_the_sdk_returned(gw: Gateway, model: str) -> None:
    answers = tool_loop(gw, KEY, model)
    assert [bool(a.tool_calls) for a in answers] == [True, True, False] and answers[-1].content
    assert all(reasoning_of(a) for a in answers)  # thinking on every turn: the state came back each time
    received = [r.json() for r in gw.sim("anthropic" if "claude" in model else "gemini").received[-len(answers):]]
    follow = received[-1]
    if "claude" in model:
        turn = next(m for m in follow["messages"] if m["role"] == "assistant")
        assert turn["content"][0]["type"] == "thinking" and turn["content"][0]["signature"]
    else:
        calls = [p for c in follow["contents"] for p in c["parts"] if "functionCall" in p]
        if "gemini-3" in model:
            assert calls[0]["thoughtSignature"] != "skip_thought_signature_validator"


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-3-pro"])
def test_a_forged_tool_call_id_from_another_key_gets_no_state(gw: Gateway, model: str) -> None:
    client, other = gw.client(KEY), gw.client(OTHER_KEY)
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.chat.completions.create(model=model, messages=[question], tools=[WEATHER], reasoning_effort="low")
    [call] = first.choices[0].message.tool_calls or []
    replay = [question, {"role": "assistant", "content": first.choices[0].message.content,
                         "tool_calls": [call.model_dump(exclude_none=True)]},
              {"role": "tool", "tool_call_id": call.id, "content": "21 degrees"}]
    answer = other.chat.completions.create(model=model, messages=replay, tools=[WEATHER], reasoning_effort="low")
    assert answer.choices[0].message.content  # the request goes on, without the other key's state
    sent = gw.sim("anthropic" if "claude" in model else "gemini").received[-1].json()
    text = json.dumps(sent)
    if "claude" in model:
        assert '"thinking"' not in json.dumps(sent["messages"]) and "thinking" not in sent
    else:
        assert "skip_thought_signature_validator" in text
    mine = client.chat.completions.create(model=model, messages=replay, tools=[WEATHER], reasoning_effort="low")
    assert reasoning_of(mine.choices[0].message)


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_parse_with_a_pydantic_model_on_every_chat_model(gw: Gateway, model: str) -> None:
    client = gw.client(KEY, "/vision") if "llava" in model else gw.client(KEY)
    completion = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "Tell me about Paris."}], response_format=City)
    assert isinstance(completion.choices[0].message.parsed, City)
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", CHAT_MODELS)
def test_json_object_on_every_chat_model(gw: Gateway, model: str) -> None:
    client = gw.client(KEY, "/vision") if "llava" in model else gw.client(KEY)
    completion = client.chat.completions.create(
        model=model, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Answer in JSON: what is Paris?"}])
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_temperature_and_top_p_to_claude_4_5(gw: Gateway) -> None:
    before = len(gw.sim("anthropic").received)
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(KEY).chat.completions.create(model="claude-sonnet-4-5", temperature=0.5, top_p=0.9,
                                               messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["param"] == "top_p"  # type: ignore[index]
    assert len(gw.sim("anthropic").received) == before  # refused before any upstream call
    raw = gw.client(KEY).chat.completions.with_raw_response.create(
        model="claude-3-5-sonnet", temperature=0.5, top_p=0.9, messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-llm-router-dropped-params"] == "top_p"
    assert "top_p" not in gw.sim("anthropic").received[-1].json()
    assert raw.parse().choices[0].message.content


def test_penalties_to_gemini_2_5_are_named_or_dropped(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client(KEY).chat.completions.create(model="gemini-2.5-flash", presence_penalty=0.5,
                                               messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["param"] == "presence_penalty"  # type: ignore[index]
    raw = gw.client(KEY).chat.completions.with_raw_response.create(
        model="gemini-1.5-flash", presence_penalty=0.5, messages=[{"role": "user", "content": "Hi"}])
    assert raw.headers["x-llm-router-dropped-params"] == "presence_penalty"


@pytest.fixture
def prefix() -> Iterator[str]:
    value = new_prefix()
    yield value
    delete_prefix(SHARED_REDIS, value)


def test_with_redis_the_state_is_shared_by_replicas(prefix: str) -> None:
    """Two gateways sharing one Redis: the second turn of a Claude tool loop with thinking is
    served by the other replica, which finds the thinking blocks there."""
    table = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    table["state"] = {"redis_url": SHARED_REDIS, "key_prefix": prefix}
    table["keys"] = [{"name": "reasoning-a", "key": KEY, "models": ["*"]}]
    with Gateway(copy.deepcopy(table), str(ROUTES)) as one, Gateway(copy.deepcopy(table), str(ROUTES)) as two:
        question = {"role": "user", "content": "What is the weather in Paris?"}
        first = one.client(KEY).chat.completions.create(model="claude-sonnet-4-5", messages=[question],
                                                        tools=[WEATHER], reasoning_effort="low")
        [call] = first.choices[0].message.tool_calls or []
        replay = [question, {"role": "assistant", "content": first.choices[0].message.content,
                             "tool_calls": [call.model_dump(exclude_none=True)]},
                  {"role": "tool", "tool_call_id": call.id, "content": "21 degrees"}]
        second = two.client(KEY).chat.completions.create(model="claude-sonnet-4-5", messages=replay,
                                                         tools=[WEATHER], reasoning_effort="low")
        assert reasoning_of(second.choices[0].message)
        sent = two.sim("anthropic").received[-1].json()
        assert sent["messages"][1]["content"][0]["type"] == "thinking"
