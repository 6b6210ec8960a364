"""The API guide's client examples (reference-service-api-guide.txt), run as written
against claude-3-5-sonnet: only the model name differs. What they print is checked,
and what the Anthropic simulator received."""

from __future__ import annotations

import json
from typing import Any

import pytest

from providers.simulators.anthropic import answer_message
from tests.harness import Gateway

GUIDE_SYSTEM = "You are a helpful assistant named Llama-3."
GUIDE_QUESTION = "What is Open Telekom Cloud?"


def guide_chat_example(client: Any, model: str, stream: bool) -> None:
    """The guide's "Chat completion API" example, verbatim apart from `model` and `stream`."""
    chat_response = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are a helpful assistant named Llama-3."},
            {"role": "user", "content": "What is Open Telekom Cloud?"},
        ],
        temperature=0.1,
        max_tokens=256,
        stream=stream
    )
    if not stream:
        print(chat_response.choices[0].message.content)
    else:
        for chunk in chat_response:
            if chunk.choices:  # noqa: SIM102 (the guide's code, as written)
                if chunk.choices[0].delta.content is not None:
                    print(chunk.choices[0].delta.content, end="", flush=True)


def guide_function_calling_example(client: Any, model: str) -> list[Any]:
    """The guide's "Function calling" example, verbatim apart from `model`."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {
                            "type": "string",
                            "description": "The city and state, e.g. San Francisco, CA",
                        },
                        "format": {
                            "type": "string",
                            "enum": ["celsius", "fahrenheit"],
                            "description": "The temperature unit to use. Infer this from the users location.",
                        },
                    },
                    "required": ["location", "format"],
                },
            }
        },
    ]
    messages = []
    messages.append({"role": "system", "content": "Don't make assumptions about what values to plug into functions. Ask for clarification if a user request is ambiguous."})  # noqa: E501
    messages.append({"role": "user", "content": "What's the weather like today in Hamburg"})
    chat_response = client.chat.completions.create(model=model, messages=messages,tools=tools)
    assistant_message = chat_response.choices[0].message
    messages.append(assistant_message) #update the conversation
    print(assistant_message)
    return messages


@pytest.mark.parametrize("stream", [False, True])
def test_guide_chat_example(gateway: Gateway, capsys: pytest.CaptureFixture[str], stream: bool) -> None:
    sim = gateway.sim("anthropic")
    before = len(sim.received)
    guide_chat_example(gateway.client(), "claude-3-5-sonnet", stream)
    printed = capsys.readouterr().out
    received = sim.received[before]
    assert received.path == "/v1/messages"
    body = received.json()
    answer = answer_message(body, "claude-3-5-sonnet-20240620")["content"][0]["text"]
    assert printed == (answer if stream else answer + "\n")
    assert answer.endswith("You said: " + GUIDE_QUESTION)
    assert body["system"] == [{"type": "text", "text": GUIDE_SYSTEM}]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": GUIDE_QUESTION}]}]
    assert (body["temperature"], body["max_tokens"], body.get("stream", False)) == (0.1, 256, stream)


def test_guide_function_calling_example(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    sim = gateway.sim("anthropic")
    before = len(sim.received)
    messages = guide_function_calling_example(gateway.client(), "claude-3-5-sonnet")
    printed = capsys.readouterr().out
    assert printed.startswith("ChatCompletionMessage(")
    assert "name='get_current_weather'" in printed
    assert """arguments='{"location":"Hamburg","format":"celsius"}'""" in printed
    body = sim.received[before].json()
    assert body["tools"][0]["name"] == "get_current_weather"
    assert body["tools"][0]["input_schema"]["required"] == ["location", "format"]
    # ... and the conversation goes on as the guide leaves it: the tool's result, then text.
    call = messages[-1].tool_calls[0]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 12})})
    answer = gateway.client().chat.completions.create(model="claude-3-5-sonnet", messages=messages)
    assert answer.choices[0].finish_reason == "stop"
    assert 'the tool said {"temperature": 12}' in (answer.choices[0].message.content or "")
    sent = sim.received[-1].json()
    assert sent["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": '{"temperature": 12}'}]
    # The follow-up left `tools` out, as OpenAI allows; Anthropic refuses tool blocks without
    # tools, so the one the history called is declared, and may not be called again.
    assert sent["tools"] == [{"name": "get_current_weather", "input_schema": {"type": "object"}}]
    assert sent["tool_choice"] == {"type": "none"}
