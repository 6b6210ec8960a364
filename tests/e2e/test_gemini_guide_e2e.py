"""The API guide's client examples (reference-service-api-guide.txt), run as written
against gemini-1.5-pro and text-embedding-004: only `base_url` and the model names
differ. What they print is checked, and what the Gemini simulator received. Then the
Vertex AI flavour of the same protocol, end to end."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

from providers.gemini_stream import estimate_tokens
from providers.simulators.common import count_tokens
from providers.simulators.gemini import EMBEDDING_DIMENSION
from tests.e2e.gemini_support import (
    EMBEDDING_MODEL,
    MODEL,
    VERTEX_EMBEDDING_MODEL,
    VERTEX_MODEL,
    assert_gemini_call,
    assert_vertex_call,
    chat,
    finish_reasons,
    gemini_table,
    simulator_text,
    simulator_usage,
    streamed_text,
    usage_of,
)
from tests.harness import KEY_A, Gateway

GUIDE_TEXTS = ["I am Batman and I'm rich", "I am Spiderman", "I am Ironman and I'm a bilionaire", "I am Flash",
               "I am the president of USA"]


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with Gateway(gemini_table()) as gateway:
        yield gateway


@pytest.fixture
def client(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAI]:
    """The guide's step 1, with our base URL: the key comes from API_KEY."""
    monkeypatch.setenv("API_KEY", KEY_A)
    client = OpenAI(
        api_key=os.getenv('API_KEY'),
        base_url=gw.url("/v2"),
    )
    yield client
    client.close()


# --- the guide's examples, verbatim apart from the model ---------------------------------


def guide_chat_example(client: Any, model: str, stream: bool) -> None:
    """The guide's "Chat completion API" example."""
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


def guide_embedding_example(client: Any, model: str) -> None:
    """The guide's "Embedding API" example."""
    texts=["I am Batman and I'm rich","I am Spiderman","I am Ironman and I'm a bilionaire", "I am Flash", "I am the president of USA"]  # noqa: E501, E231
    embeddings = client.embeddings.create(
        input=texts, model=model
    )
    print('Embedding dimension: ',len(embeddings.data[0].embedding))  # noqa: E231
    print('Number of embedding vector: ',len(embeddings.data))  # noqa: E231
    print('Token usage: ',embeddings.usage)  # noqa: E231


def guide_function_calling_example(client: Any, model: str) -> list[Any]:
    """The guide's "Function calling" example."""
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
    chat_response = client.chat.completions.create(model=model, messages=messages,tools=tools)  # noqa: E231
    assistant_message = chat_response.choices[0].message
    messages.append(assistant_message) #update the conversation  # noqa: E262
    print(assistant_message)
    return messages


def test_guide_lists_the_gemini_models(client: OpenAI) -> None:
    models = {model.id for model in client.models.list().data}
    assert {MODEL, EMBEDDING_MODEL} <= models


@pytest.mark.parametrize("stream", [False, True])
def test_guide_chat_example(gw: Gateway, client: OpenAI, capsys: pytest.CaptureFixture[str], stream: bool) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    guide_chat_example(client, MODEL, stream)
    printed = capsys.readouterr().out
    assert len(sim.received) == before + 1
    received = sim.received[-1]
    answer = simulator_text(received)
    assert printed == (answer if stream else answer + "\n")
    assert answer.endswith("You said: What is Open Telekom Cloud?")
    assert assert_gemini_call(received, stream) == {
        "systemInstruction": {"parts": [{"text": "You are a helpful assistant named Llama-3."}]},
        "contents": [{"role": "user", "parts": [{"text": "What is Open Telekom Cloud?"}]}],
        "generationConfig": {"temperature": 0.1, "maxOutputTokens": 256}}


def test_guide_embedding_example(gw: Gateway, client: OpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    guide_embedding_example(client, EMBEDDING_MODEL)
    tokens = sum(estimate_tokens(text) for text in GUIDE_TEXTS)  # estimated: Gemini reports none
    assert capsys.readouterr().out == (
        f"Embedding dimension:  {EMBEDDING_DIMENSION}\n"
        "Number of embedding vector:  5\n"
        f"Token usage:  Usage(prompt_tokens={tokens}, total_tokens={tokens})\n")
    received = gw.sim("gemini").received[-1]
    assert received.path == f"/v1beta/models/{EMBEDDING_MODEL}:batchEmbedContents"
    assert [r["content"]["parts"][0]["text"] for r in received.json()["requests"]] == GUIDE_TEXTS


def test_guide_function_calling_example(gw: Gateway, client: OpenAI, capsys: pytest.CaptureFixture[str]) -> None:
    sim = gw.sim("gemini")
    before = len(sim.received)
    messages = guide_function_calling_example(client, MODEL)
    printed = capsys.readouterr().out
    assert printed.startswith("ChatCompletionMessage(content=None, refusal=None, role='assistant'")
    assert "name='get_current_weather'" in printed and "id='call_" in printed
    assert """arguments='{"location":"Hamburg","format":"celsius"}'""" in printed
    body = assert_gemini_call(sim.received[before])
    [declaration] = body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_current_weather"
    assert declaration["parameters"]["required"] == ["location", "format"]
    # ... and the conversation goes on as the guide leaves it: the tool's result, then text.
    # The follow-up leaves `tools` out, as OpenAI allows.
    call = messages[-1].tool_calls[0]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 12})})
    answer = client.chat.completions.create(model=MODEL, messages=messages)
    assert answer.choices[0].finish_reason == "stop" and answer.model == MODEL
    assert 'get_current_weather said {"temperature":12}' in (answer.choices[0].message.content or "")
    sent = assert_gemini_call(sim.received[-1])
    assert sent["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "get_current_weather",
                                                      "args": {"location": "Hamburg", "format": "celsius"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_current_weather",
                                                         "response": {"temperature": 12}}}]}]
    assert "tools" not in sent


# --- the Vertex AI flavour ------------------------------------------------------------


def test_vertex_chat_whole_and_streamed(gw: Gateway) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Vertex"}]
    response, received = chat(gw, model=VERTEX_MODEL, messages=messages)
    assert response.model == VERTEX_MODEL and response.choices[0].message.content == simulator_text(received)
    assert usage_of(response) == simulator_usage(received)
    assert assert_vertex_call(received, "generateContent") == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "Hello Vertex"}]}]}
    chunks, received = chat(gw, model=VERTEX_MODEL, messages=messages, stream=True,
                            stream_options={"include_usage": True})
    assert streamed_text(chunks) == simulator_text(received) and finish_reasons(chunks) == ["stop"]
    assert all(c.model == VERTEX_MODEL for c in chunks)
    assert usage_of(chunks[-1]) == simulator_usage(received)
    assert_vertex_call(received, "streamGenerateContent")
    assert received.query == {"alt": "sse"}


def test_vertex_tool_call_round_trip(gw: Gateway) -> None:
    tools: list[Any] = [{"type": "function", "function": {"name": "get_current_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]
    messages: list[Any] = [{"role": "user", "content": "What's the weather like today in Hamburg"}]
    response, received = chat(gw, model=VERTEX_MODEL, tools=tools, messages=messages)
    [call] = response.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == {"location": "Hamburg"}
    assert assert_vertex_call(received, "generateContent")["tools"] == [{"functionDeclarations": [{
        "name": "get_current_weather",
        "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}, "required": ["location"]}}]}]
    messages += [response.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    answer, received = chat(gw, model=VERTEX_MODEL, tools=tools, messages=messages)
    assert answer.choices[0].message.content == simulator_text(received)
    assert assert_vertex_call(received, "generateContent")["contents"][-1] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_current_weather", "response": {"result": "sunny"}}}]}


def test_vertex_embeddings_use_predict_and_its_token_counts(gw: Gateway) -> None:
    embeddings = gw.client().embeddings.create(input=GUIDE_TEXTS, model=VERTEX_EMBEDDING_MODEL)
    assert embeddings.model == VERTEX_EMBEDDING_MODEL and len(embeddings.data) == 5
    assert len(embeddings.data[0].embedding) == EMBEDDING_DIMENSION
    # Vertex AI reports a token count per instance: no estimate here.
    assert embeddings.usage.prompt_tokens == sum(count_tokens(t) for t in GUIDE_TEXTS)
    received = gw.sim("vertex").received[-1]
    assert received.path == "/v1/projects/my-project/locations/europe-west4/publishers/google/models/" \
                            "text-embedding-004:predict"
    assert received.headers["Authorization"] == "Bearer simulator-key"
    assert received.json() == {"instances": [{"content": t} for t in GUIDE_TEXTS]}
