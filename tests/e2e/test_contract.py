"""One contract over every provider: the same cases, through the gateway with the stock
`openai` client, for each protocol that declares the capability."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from providers.base import Operation
from providers.registry import KINDS
from providers.simulators.common import Fault
from tests.harness import Gateway, table_dict

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                     "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"))


@dataclass(frozen=True)
class Provider:
    kind: str
    model: str  # the public model id served by one account of this kind
    tools: bool
    vision: bool


# Every kind of the registry, with the capabilities it declares there.
PROVIDERS = [Provider(kind, f"contract-{kind}", spec.tools, spec.vision) for kind, spec in KINDS.items()
             if Operation.CHAT in spec.operations]


def contract_table() -> dict[str, Any]:
    data = table_dict()
    for p in PROVIDERS:
        spec = KINDS[p.kind]
        data["providers"][f"p-{p.kind}"] = {"kind": p.kind, "base_url": "http://placeholder", "api_key": "k",
                                            **spec.example}
        data["models"][p.model] = {"meta_data": {"max_sequence_length": 128000, "max_output_length": 4096},
                                   "targets": [{"provider": f"p-{p.kind}", "model": spec.example_model}]}
    for provider in data["providers"].values():
        provider["max_retries"] = 0
        provider["cooldown"] = {"failures": 1000}
    return data


WEATHER = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(contract_table()) as gateway:
        yield gateway


def ids(provider: Provider) -> str:
    return provider.model


@pytest.mark.parametrize("p", PROVIDERS, ids=ids)
def test_plain(gw: Gateway, p: Provider) -> None:
    answer = gw.client().chat.completions.create(model=p.model, messages=[{"role": "user", "content": "Hello"}])
    assert answer.object == "chat.completion" and answer.model == p.model
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens > 0


@pytest.mark.parametrize("p", PROVIDERS, ids=ids)
def test_stream_with_usage(gw: Gateway, p: Provider) -> None:
    chunks = list(gw.client().chat.completions.create(
        model=p.model, messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == p.model for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize("p", [p for p in PROVIDERS if p.tools], ids=ids)
def test_tool_call_plain_and_streamed(gw: Gateway, p: Provider) -> None:
    messages = [{"role": "user", "content": "What's the weather like today in Hamburg"}]
    answer = gw.client().chat.completions.create(model=p.model, messages=messages, tools=WEATHER)
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_current_weather" and "location" in json.loads(call.function.arguments)
    chunks = list(gw.client().chat.completions.create(model=p.model, messages=messages, tools=WEATHER, stream=True))
    deltas = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].index == 0 and deltas[0].id and deltas[0].function.name == "get_current_weather"
    assert "location" in json.loads("".join(d.function.arguments or "" for d in deltas))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("p", [p for p in PROVIDERS if p.vision], ids=ids)
def test_data_uri_image(gw: Gateway, p: Provider) -> None:
    content = [{"type": "text", "text": "What is in this image?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG.decode()}"}}]
    answer = gw.client().chat.completions.create(model=p.model, messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content


@pytest.mark.parametrize("p", PROVIDERS, ids=ids)
@pytest.mark.parametrize(("status", "seen", "exception"), [
    (400, 400, openai.BadRequestError), (429, 429, openai.RateLimitError), (500, 500, openai.InternalServerError),
])
def test_upstream_errors(gw: Gateway, p: Provider, status: int, seen: int, exception: type) -> None:
    sim = gw.sim(p.kind)
    sim.faults.clear()
    sim.faults.append(Fault(status=status))
    try:
        with pytest.raises(exception) as caught:
            gw.client().chat.completions.create(model=p.model, messages=[{"role": "user", "content": "Hello"}])
        assert caught.value.status_code == seen
        assert set(caught.value.body) >= {"message", "type"}  # type: ignore[arg-type]
    finally:
        sim.faults.clear()
