"""Claude on Vertex AI (`anthropic-vertex`) end to end: the same translator, reached
through Vertex's path, Bearer auth and `anthropic_version` in the body. The demo
transform points the provider at the Anthropic simulator and gives it a key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from providers.base import InlineImage
from providers.simulators.common import Fault, Received
from router.gateway import GATEWAY
from router.upstream.fetch import ImageFetcher
from tests.harness import Gateway, table_dict

MODEL = "claude-3-5-sonnet-v2-US"
UPSTREAM_MODEL = "claude-3-5-sonnet-v2@20241022"
VERTEX_PATH = "/v1/projects/llm-project/locations/us-east5/publishers/anthropic/models/" + UPSTREAM_MODEL
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n a tiny png").decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0 a tiny jpeg").decode()
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


def vertex_table() -> dict[str, Any]:
    table = table_dict()
    table["providers"]["vertex-claude"] = {
        "kind": "anthropic-vertex", "base_url": "https://us-east5-aiplatform.googleapis.com",
        "project": "llm-project", "location": "us-east5", "token_file": "/nonexistent/token",
        "max_retries": 0, "cooldown": {"failures": 1000, "duration": 0}}
    table["models"][MODEL] = {"meta_data": {"max_sequence_length": 200000, "max_output_length": 8192},
                              "targets": [{"provider": "vertex-claude", "model": UPSTREAM_MODEL}]}
    return table


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(vertex_table()) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def no_leftover_faults(gw: Gateway) -> Iterator[None]:
    gw.sim("anthropic-vertex").faults.clear()
    yield
    gw.sim("anthropic-vertex").faults.clear()


def chat(gw: Gateway, **kwargs: Any) -> tuple[Any, Received]:
    sim = gw.sim("anthropic-vertex")
    before = len(sim.received)
    response = gw.client().chat.completions.create(model=MODEL, **kwargs)
    if kwargs.get("stream"):
        response = list(response)
    assert len(sim.received) == before + 1
    return response, sim.received[-1]


def assert_vertex_call(received: Received, method: str) -> dict[str, Any]:
    assert received.path == f"{VERTEX_PATH}:{method}"
    # The demo transform replaced the token file with a key: used as the Bearer token.
    assert received.headers["Authorization"] == "Bearer simulator-key"
    assert "x-api-key" not in received.headers and "anthropic-version" not in received.headers
    body: dict[str, Any] = received.json()
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    return body


def test_plain_chat(gw: Gateway) -> None:
    response, received = chat(gw, messages=[{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hello"}], temperature=0.2)
    assert response.model == MODEL and response.choices[0].finish_reason == "stop"
    assert response.choices[0].message.content.endswith("You said: Hello")
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens > 0
    body = assert_vertex_call(received, "rawPredict")
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["max_tokens"] == 8192 and body["temperature"] == 0.2


def test_streamed_two_tool_calls_with_usage(gw: Gateway) -> None:
    chunks, received = chat(gw, messages=[{"role": "user", "content": "Weather in two cities?"}], tools=TOOLS,
                            stream=True, stream_options={"include_usage": True})
    deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [(d.index, d.function.name) for d in deltas if d.id] == [(0, "get_current_weather"),
                                                                    (1, "get_current_weather")]
    arguments = ["".join(d.function.arguments or "" for d in deltas if d.index == i) for i in (0, 1)]
    assert [json.loads(a) for a in arguments] == [{"location": "Hamburg"}, {"location": "Paris"}]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert all(c.model == MODEL for c in chunks)
    body = assert_vertex_call(received, "streamRawPredict")
    assert body["stream"] is True and body["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]


def test_tool_result_round_trip(gw: Gateway) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Hamburg?"}]
    first, _ = chat(gw, messages=messages, tools=TOOLS)
    messages.append(first.choices[0].message)
    call = first.choices[0].message.tool_calls[0]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "9 degrees"})
    answer, received = chat(gw, messages=messages, tools=TOOLS)
    assert "the tool said 9 degrees" in answer.choices[0].message.content
    body = assert_vertex_call(received, "rawPredict")
    assert body["messages"][-1]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "9 degrees"}]


def image_message(url: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "What's in this image?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def test_data_uri_image(gw: Gateway) -> None:
    _, received = chat(gw, messages=image_message(f"data:image/png;base64,{PNG}"))
    image = assert_vertex_call(received, "rawPredict")["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


class RecordingFetcher(ImageFetcher):
    """Stands in for the network: what the router's SSRF-guarded fetch would return."""

    def __init__(self) -> None:
        super().__init__(max_bytes=1 << 20)
        self.fetched: list[str] = []

    async def fetch(self, url: str, param: str) -> InlineImage:
        self.fetched.append(url)
        return InlineImage("image/jpeg", JPEG)


def test_https_image_url_is_fetched_and_inlined(gw: Gateway) -> None:
    """Vertex takes no URL sources: the router fetches the image and sends it as base64."""
    assert gw.app is not None
    runtime_gateway = gw.app[GATEWAY]
    fetcher = RecordingFetcher()
    previous, runtime_gateway.fetcher = runtime_gateway.fetcher, fetcher
    url = "https://upload.wikimedia.org/wikipedia/commons/boardwalk.jpg"
    try:
        chunks, received = chat(gw, messages=image_message(url), stream=True)
    finally:
        runtime_gateway.fetcher = previous
    assert fetcher.fetched == [url]
    assert "What's in this image?" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    image = assert_vertex_call(received, "streamRawPredict")["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": JPEG}}


def test_loopback_image_url_is_refused_before_any_call(gw: Gateway) -> None:
    sim = gw.sim("anthropic-vertex")
    before = len(sim.received)
    with pytest.raises(openai.BadRequestError):
        gw.client().chat.completions.create(model=MODEL, messages=image_message("https://127.0.0.1/cat.png"))
    assert len(sim.received) == before


@pytest.mark.parametrize(("status", "error_class", "client_status"), [
    (400, openai.BadRequestError, 400),
    (429, openai.RateLimitError, 429),
    (529, openai.InternalServerError, 503),
])
def test_error_status(gw: Gateway, status: int, error_class: type[openai.APIStatusError],
                      client_status: int) -> None:
    gw.sim("anthropic-vertex").faults.extend([Fault(status=status)] * 5)
    with pytest.raises(error_class) as caught:
        gw.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert type(caught.value) is error_class and caught.value.status_code == client_status
    assert_vertex_call(gw.sim("anthropic-vertex").received[-1], "rawPredict")
