"""OpenAI shapes the gateway does not translate itself (custom tools, custom tool calls,
tool_choice allowed_tools) reach OpenAI-family upstreams unchanged; a translator that cannot
express them answers the 400 naming them."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.harness import Gateway

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SHELL = {"type": "custom", "custom": {"name": "shell", "description": "Runs a shell command",
                                      "format": {"type": "text"}}}
ALLOWED = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
    {"type": "custom", "custom": {"name": "shell"}}]}}


def _last_sent(gw: Gateway, since: int) -> Any:
    return [r.json() for r in gw.sim("openai").received[since:] if r.path.endswith("/chat/completions")][-1]


def test_custom_tools_and_allowed_tools_reach_openai_unchanged(gw: Gateway) -> None:
    since = len(gw.sim("openai").received)
    answer = gw.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "list the files"}],
        tools=[WEATHER, SHELL], tool_choice=ALLOWED)  # type: ignore[list-item, arg-type]
    sent = _last_sent(gw, since)
    assert sent["tools"] == [WEATHER, SHELL] and sent["tool_choice"] == ALLOWED
    call: Any = answer.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.type == "custom" and call.custom.name == "shell"


def test_a_custom_tool_call_in_the_history_reaches_openai_unchanged(gw: Gateway) -> None:
    call = {"id": "call_1", "type": "custom", "custom": {"name": "shell", "input": "ls -la"}}
    messages: Any = [{"role": "user", "content": "list the files"},
                     {"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": "call_1", "content": "a.txt b.txt"}]
    since = len(gw.sim("openai").received)
    gw.client().chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[SHELL])  # type: ignore[list-item]
    assert _last_sent(gw, since)["messages"][1]["tool_calls"] == [call]


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "gemini-1.5-pro"])
def test_a_translator_without_custom_tools_names_them(gw: Gateway, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                            tools=[SHELL])  # type: ignore[list-item]
    assert caught.value.param == "tools[0]"


@pytest.mark.parametrize("model", ["claude-3-5-sonnet", "gemini-1.5-pro"])
def test_a_translator_without_allowed_tools_names_tool_choice(gw: Gateway, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                            tools=[WEATHER], tool_choice=ALLOWED)  # type: ignore[list-item, arg-type]
    assert caught.value.param == "tool_choice"


def test_a_malformed_custom_tool_is_still_refused_at_the_edge(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                            tools=[{"type": "custom", "custom": {"description": "x"}}])  # type: ignore[list-item]
    assert caught.value.param == "tools[0].custom.name"
