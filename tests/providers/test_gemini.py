"""The Gemini adapter: request translation, schema cleaning, responses, embeddings,
errors and the two flavours (Gemini API, Vertex AI). Pure: no network."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from providers import vertex_auth
from providers.base import ApiRequest, InlineImage, Operation, UpstreamError, Usage
from providers.gemini import ADAPTERS, GeminiAdapter, chat_to_gemini, embeddings_to_gemini
from providers.gemini_schema import clean_schema
from providers.gemini_stream import error_from_body
from providers.settings import ProviderSettings, Secret

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "format": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location", "format"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def gemini_adapter(**fields: Any) -> GeminiAdapter:
    config = ProviderSettings(
        name="gemini", kind="gemini", base_url="https://generativelanguage.googleapis.com/", **fields
    )
    adapter = ADAPTERS["gemini"](config)
    assert isinstance(adapter, GeminiAdapter)
    return adapter


def vertex_adapter(**fields: Any) -> GeminiAdapter:
    config = ProviderSettings(
        name="vertex",
        kind="vertex",
        base_url="https://europe-west4-aiplatform.googleapis.com",
        project="my-project",
        location="europe-west4",
        **fields,
    )
    adapter = ADAPTERS["vertex"](config)
    assert isinstance(adapter, GeminiAdapter)
    return adapter


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "gemini-1.5-pro", "messages": list(messages), **fields}


def translate(body: dict[str, Any], images: dict[str, InlineImage] | None = None) -> dict[str, Any]:
    return chat_to_gemini(body, images or {})


def rejected(body: dict[str, Any]) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        translate(body)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    assert not caught.value.retryable
    return caught.value


USER = {"role": "user", "content": "Hello"}


# --- requests -------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    body = chat(
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in German."}]},
        USER,
    )
    request = translate(body)
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Answer in German."}]}
    assert request["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]


def test_assistant_is_model_and_same_role_turns_merge() -> None:
    body = chat(USER, {"role": "user", "content": "Are you there?"}, {"role": "assistant", "content": "Yes."},
                {"role": "assistant", "content": [{"type": "text", "text": "How can I help?"}]})  # fmt: skip
    assert translate(body)["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}, {"text": "Are you there?"}]},
        {"role": "model", "parts": [{"text": "Yes."}, {"text": "How can I help?"}]},
    ]


def test_only_system_messages_is_rejected() -> None:
    assert rejected(chat({"role": "system", "content": "x"})).param == "messages"


def test_unknown_role_is_rejected() -> None:
    assert rejected(chat({"role": "robot", "content": "x"})).param == "messages[0].role"


def test_data_uri_and_fetched_images_become_inline_data() -> None:
    png = base64.b64encode(b"\x89PNG").decode()
    url = "https://example.com/cat.jpg"
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
        {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
    ]
    request = translate(chat({"role": "user", "content": content}), {url: InlineImage("image/jpeg", "AAAA")})
    assert request["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": png}},
        {"inlineData": {"mimeType": "image/jpeg", "data": "AAAA"}},
    ]


def test_image_url_not_fetched_is_a_400() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    assert rejected(chat({"role": "user", "content": content})).param == "messages[0].content[0].image_url.url"


def test_image_types_gemini_does_not_take_are_a_400() -> None:
    gif = [{"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}}]
    assert "image/gif" in rejected(chat({"role": "user", "content": gif})).message
    url = "https://example.com/cat.gif"
    fetched = [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": url}}]
    with pytest.raises(UpstreamError) as caught:
        translate(chat({"role": "user", "content": fetched}), {url: InlineImage("image/gif", "R0lGODlh")})
    assert caught.value.status == 400 and caught.value.param == "messages[0].content[1].image_url.url"


def test_malformed_data_uri_is_a_400() -> None:
    content = [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]
    assert rejected(chat({"role": "user", "content": content})).param == "messages[0].content[0].image_url.url"


def test_audio_part_and_unsupported_part() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    request = translate(chat({"role": "user", "content": [audio]}))
    assert request["contents"][0]["parts"] == [{"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}]
    file_part = {"type": "file", "file": {"file_id": "file-1"}}  # no Files API to read it from
    assert rejected(chat({"role": "user", "content": [file_part]})).param == "messages[0].content[0].file.file_id"
    video = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    assert rejected(chat({"role": "user", "content": [video]})).param == "messages[0].content[0]"


def tool_round_trip() -> list[dict[str, Any]]:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"city": "Berlin"}'}},
    ]
    return [
        {"role": "user", "content": "Weather in Paris and time in Berlin?"},
        {"role": "assistant", "content": None, "tool_calls": calls, "refusal": None, "function_call": None},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temperature": 18}'},
    ]


def test_tool_calls_and_grouped_function_responses_named_by_id() -> None:
    contents = translate(chat(*tool_round_trip()))["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_time", "args": {"city": "Berlin"}}},
        ],
    }
    # both results in ONE user turn, each named after the call its id points at, in the
    # order of the calls (the client answered call_b first)
    assert contents[2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temperature": 18}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
        ],
    }
    assert len(contents) == 3


def test_same_named_calls_get_their_own_results_back_by_id() -> None:
    calls = [
        {
            "id": f"call_{city}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'},
        }
        for city in ("Paris", "Rome", "Oslo")
    ]
    messages = [
        {"role": "user", "content": "Weather in Paris, Rome and Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        *(
            {"role": "tool", "tool_call_id": f"call_{city}", "content": f'{{"city": "{city}"}}'}
            for city in ("Oslo", "Paris", "Rome")
        ),
        {"role": "user", "content": "And tomorrow?"},
    ]
    contents = translate(chat(*messages))["contents"]
    responses = [part["functionResponse"]["response"]["city"] for part in contents[2]["parts"][:3]]
    assert responses == ["Paris", "Rome", "Oslo"]  # position k answers call k, whatever order the client used
    assert contents[2]["parts"][3] == {"text": "And tomorrow?"}


def test_tool_result_shapes_are_wrapped_unless_objects() -> None:
    messages = tool_round_trip()[:3]
    for content, response in [
        ("[1, 2]", {"result": [1, 2]}),
        ("42", {"result": 42}),
        ("not json", {"result": "not json"}),
        ([{"type": "text", "text": "sunny"}], {"result": "sunny"}),
    ]:
        messages[2] = {"role": "tool", "tool_call_id": "call_b", "content": content}
        part = translate(chat(*messages))["contents"][2]["parts"][0]
        assert part["functionResponse"]["response"] == response


def test_tool_result_with_unknown_id_is_a_400() -> None:
    messages = tool_round_trip()
    messages[2]["tool_call_id"] = "call_zzz"
    assert rejected(chat(*messages)).param == "messages[2].tool_call_id"


def test_invalid_tool_call_arguments_are_a_400() -> None:
    messages = tool_round_trip()
    messages[1]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    assert rejected(chat(*messages)).param == "messages[1].tool_calls[0].function.arguments"
    messages[1]["tool_calls"][0]["function"]["arguments"] = "[1]"
    assert rejected(chat(*messages)).param == "messages[1].tool_calls[0].function.arguments"


def test_tools_become_one_cleaned_function_declarations_tool() -> None:
    no_args = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    empty = {"type": "function", "function": {"name": "now", "parameters": {}}}
    request = translate(chat(USER, tools=[WEATHER_TOOL, no_args]))
    assert translate(chat(USER, tools=[empty]))["tools"] == [{"functionDeclarations": [{"name": "now"}]}]
    assert request["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_current_weather",
                    "description": "Get the current weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "location": {
                                "type": "STRING",
                                "description": "The city and state, e.g. San Francisco, CA",
                            },
                            "format": {"type": "STRING", "enum": ["celsius", "fahrenheit"], "format": "enum"},
                        },
                        "required": ["location", "format"],
                    },
                },
                {"name": "now"},  # a function without arguments declares no parameters
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_current_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_current_weather"]},
        ),
    ],
)
def test_tool_choice(choice: Any, config: dict[str, Any]) -> None:
    request = translate(chat(USER, tools=[WEATHER_TOOL], tool_choice=choice))
    assert request["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_without_tools_and_non_function_tools() -> None:
    assert "toolConfig" not in translate(chat(USER, tool_choice="none"))
    assert rejected(chat(USER, tool_choice="required")).param == "tool_choice"
    assert rejected(chat(USER, tools=[{"type": "custom", "custom": {"name": "x"}}])).param == "tools[0]"


def test_generation_config() -> None:
    body = chat(USER, temperature=0.2, top_p=0.9, max_tokens=100, max_completion_tokens=50, stop="END", n=2,
                seed=7, presence_penalty=0.5, frequency_penalty=-0.5, response_format={"type": "json_object"},
                user="u-1", parallel_tool_calls=True, stream=True, stream_options={"include_usage": True},
                logprobs=False, metadata=None)  # fmt: skip
    assert translate(body)["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "maxOutputTokens": 50,  # max_completion_tokens wins over max_tokens
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
    }


def test_json_schema_of_any_object_asks_for_json_only() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "any", "schema": {"type": "object"}}}
    assert translate(chat(USER, response_format=response_format))["generationConfig"] == {
        "responseMimeType": "application/json"
    }


def test_json_schema_response_format_is_cleaned() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": ["integer", "null"]}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": schema}}
    config = translate(chat(USER, response_format=response_format))["generationConfig"]
    assert config == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING"}, "population": {"type": "INTEGER", "nullable": True}},
            "required": ["city", "population"],
        },
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [("logit_bias", {"50256": -100}), ("functions", [{"name": "f"}]),
     ("reasoning_effort", "low"), ("modalities", ["text", "audio"]), ("prediction", {"type": "content"}),
     ("some_new_field", 1)],
)  # fmt: skip
def test_parameters_without_equivalent_are_rejected_by_name(field: str, value: Any) -> None:
    error = rejected(chat(USER, **{field: value}))
    assert error.param == field
    assert field in error.message


def test_logprobs_request() -> None:
    config = translate(chat(USER, logprobs=True, top_logprobs=2))["generationConfig"]
    assert config == {"responseLogprobs": True, "logprobs": 2}
    assert translate(chat(USER, logprobs=True))["generationConfig"] == {"responseLogprobs": True}
    assert "generationConfig" not in translate(chat(USER, logprobs=False))
    assert rejected(chat(USER, top_logprobs=2)).param == "top_logprobs"
    assert rejected(chat(USER, logprobs=True, top_logprobs=21)).param == "top_logprobs"


def test_bad_parameter_values_are_rejected_by_name() -> None:
    assert rejected(chat(USER, temperature="hot")).param == "temperature"
    assert rejected(chat(USER, max_tokens=0)).param == "max_tokens"
    assert rejected(chat(USER, stop=[1])).param == "stop"
    assert rejected(chat(USER, response_format={"type": "yaml"})).param == "response_format"


# --- schemas --------------------------------------------------------------------------


def test_schema_refs_are_inlined_and_extras_dropped() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Order",
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item", "description": "What to buy"},
            "kind": {"const": "order"},
            "size": {"enum": [1, 2, 3]},
            "note": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}], "default": None},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "$defs": {"Item": {"title": "Item", "type": "object", "properties": {"sku": {"type": "string"}}}},
    }
    assert clean_schema(schema, "p") == {
        "type": "OBJECT",
        "properties": {
            "item": {"type": "OBJECT", "properties": {"sku": {"type": "STRING"}}, "description": "What to buy"},
            "kind": {"enum": ["order"], "type": "STRING", "format": "enum"},
            "size": {"description": "(one of: 1, 2, 3)", "type": "INTEGER"},
            "note": {"type": "STRING", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
            "either": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        },
    }


def test_all_of_objects_merge() -> None:
    schema = {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                        {"properties": {"b": {"type": "boolean"}}}]}  # fmt: skip
    assert clean_schema(schema, "p") == {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}},
        "required": ["a"],
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}, "$defs": {"Node": {"type": "object",
         "properties": {"next": {"$ref": "#/$defs/Node"}}}}},  # recursive
        {"type": "object", "properties": {"x": {"$ref": "https://example.com/schema.json"}}},
        {"type": "object", "properties": {"map": {"type": "object", "additionalProperties": {"type": "string"}}}},
        {"type": "object", "properties": {"x": {"not": {"type": "string"}}}},
        {"type": "object", "properties": {"tags": {"type": "array"}}},
    ],
)  # fmt: skip
def test_inexpressible_schemas_are_a_400_naming_the_tool(schema: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    error = rejected(chat(USER, tools=[tool]))
    assert error.param == "tools[0].function.parameters"
    assert "cannot be expressed" in error.message


# --- responses ------------------------------------------------------------------------


def chat_request(**fields: Any) -> ApiRequest:
    return ApiRequest(Operation.CHAT, chat(USER, **fields), public_model="gemini-1.5-pro")


def parse(payload: dict[str, Any], request: ApiRequest | None = None) -> tuple[dict[str, Any], Usage]:
    body, usage = gemini_adapter(api_key=Secret("k")).from_upstream(request or chat_request(), orjson.dumps(payload))
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed, usage


def test_text_response() -> None:
    payload = {
        "candidates": [{"content": {"parts": [{"text": "Hello"}, {"text": " there"}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 9, "thoughtsTokenCount": 34,
                          "totalTokenCount": 52},
        "modelVersion": "gemini-1.5-pro-002",
    }  # fmt: skip
    body, usage = parse(payload)
    assert body["object"] == "chat.completion"
    assert body["model"] == "gemini-1.5-pro"  # the public model, not modelVersion
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert ChatCompletion.model_validate(body).choices[0].message.content == "Hello there"
    assert usage == Usage(prompt_tokens=9, completion_tokens=43, reasoning_tokens=34)
    assert body["usage"]["total_tokens"] == 52
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 34}


def test_tool_call_response() -> None:
    parts = [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
             {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}}]  # fmt: skip
    payload = {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP"}]}
    body, _ = parse(payload)
    message = body["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"] for c in message["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        {"name": "get_weather", "arguments": '{"city":"Berlin"}'},
    ]
    assert ChatCompletion.model_validate(body).choices[0].message.tool_calls is not None
    ids = [c["id"] for c in message["tool_calls"]]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_safety_stop_and_several_candidates() -> None:
    payload = {
        "candidates": [
            {"index": 1, "content": {"parts": [{"text": "Sure"}], "role": "model"}, "finishReason": "MAX_TOKENS"},
            {"index": 0, "finishReason": "SAFETY", "safetyRatings": [{"category": "X", "blocked": True}]},
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1},
    }
    body, _ = parse(payload)
    assert [(c["index"], c["finish_reason"], c["message"]["content"]) for c in body["choices"]] == [
        (0, "content_filter", None),
        (1, "length", "Sure"),
    ]


def test_logprobs_response() -> None:
    logprobs_result = {
        "chosenCandidates": [
            {"token": "Hi", "tokenId": 1, "logProbability": -0.5},
            {"token": "!", "logProbability": -1},
        ],
        "topCandidates": [
            {"candidates": [{"token": "Hi", "logProbability": -0.5}, {"token": "Hey", "logProbability": -1.5}]},
            {"candidates": [{"token": "!", "logProbability": -1}]},
        ],
    }
    parts = [{"text": "Hi!"}]
    candidate = {
        "content": {"parts": parts, "role": "model"},
        "finishReason": "STOP",
        "logprobsResult": logprobs_result,
    }
    body, _ = parse({"candidates": [candidate]})
    assert body["choices"][0]["logprobs"] == {
        "content": [
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": [
                {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]},
                {"token": "Hey", "logprob": -1.5, "bytes": [72, 101, 121]}]},
            {"token": "!", "logprob": -1.0, "bytes": [33],
             "top_logprobs": [{"token": "!", "logprob": -1.0, "bytes": [33]}]},
        ],
        "refusal": None,
    }  # fmt: skip


def test_blocked_prompt_is_a_content_filter_400() -> None:
    payload = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 3}}
    with pytest.raises(UpstreamError) as caught:
        parse(payload)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (400, "content_filter", False)
    assert "PROHIBITED_CONTENT" in caught.value.message


def test_response_without_usage_is_estimated() -> None:
    payload = {"candidates": [{"content": {"parts": [{"text": "12345678"}], "role": "model"}, "finishReason": "STOP"}]}
    body, usage = parse(payload)
    assert usage.estimated and usage.completion_tokens == 2 and usage.prompt_tokens > 0
    assert body["usage"]["completion_tokens"] == 2


def test_body_that_is_not_json_is_a_502() -> None:
    with pytest.raises(UpstreamError) as caught:
        gemini_adapter().from_upstream(chat_request(), b"<html>")
    assert caught.value.status == 502


# --- embeddings -----------------------------------------------------------------------


def embeddings_request(**fields: Any) -> ApiRequest:
    body = {"model": "text-embedding-004", **fields}
    return ApiRequest(Operation.EMBEDDINGS, body, public_model="text-embedding-004")


def test_embeddings_request_for_both_flavours() -> None:
    body = {"model": "text-embedding-004", "input": ["a", "b"], "dimensions": 256}
    assert embeddings_to_gemini(body, "text-embedding-004", "batchEmbedContents") == {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 256},
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 256},
        ]
    }
    assert embeddings_to_gemini({"input": "a"}, "text-embedding-004", "predict") == {"instances": [{"content": "a"}]}


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"input": [[1, 2, 3]]}, "input"), ({"input": []}, "input"), ({"input": "a", "encoding_format": "int8"},
     "encoding_format"), ({"input": "a", "dimensions": 0}, "dimensions"), ({"input": "a", "task": "x"}, "task")],
)  # fmt: skip
def test_embeddings_rejections(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        gemini_adapter().to_upstream(embeddings_request(**fields), "text-embedding-004")
    assert (caught.value.status, caught.value.param) == (400, param)


def test_embeddings_response_with_estimated_usage() -> None:
    request = embeddings_request(input=["hello world!", "a"])
    payload = {"embeddings": [{"values": [0.5, -0.25]}, {"values": [1.0, 0.0]}]}
    body, usage = gemini_adapter().from_upstream(request, orjson.dumps(payload))
    parsed = orjson.loads(body)
    assert parsed == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]},
        ],
        "model": "text-embedding-004",
        "usage": {"prompt_tokens": 3 + 1, "total_tokens": 4},  # ~4 characters a token, at least 1 a text
    }
    assert usage == Usage(prompt_tokens=4, estimated=True)
    assert CreateEmbeddingResponse.model_validate(parsed).usage.prompt_tokens == 4


def test_embeddings_base64_encoding_is_little_endian_float32() -> None:
    request = embeddings_request(input="x", encoding_format="base64")
    body, _ = gemini_adapter().from_upstream(request, orjson.dumps({"embeddings": [{"values": [0.5, -2.0]}]}))
    encoded = orjson.loads(body)["data"][0]["embedding"]
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -2.0)


def test_vertex_embeddings_use_reported_token_counts() -> None:
    request = embeddings_request(input=["a", "b"])
    predictions = [{"embeddings": {"values": [0.1], "statistics": {"token_count": 3, "truncated": False}}}] * 2
    body, usage = vertex_adapter(api_key=Secret("t")).from_upstream(
        request, orjson.dumps({"predictions": predictions})
    )
    assert usage == Usage(prompt_tokens=6)
    assert orjson.loads(body)["usage"] == {"prompt_tokens": 6, "total_tokens": 6}


def test_embedding_count_mismatch_is_a_502() -> None:
    with pytest.raises(UpstreamError) as caught:
        gemini_adapter().from_upstream(embeddings_request(input=["a", "b"]), b'{"embeddings": [{"values": [1]}]}')
    assert caught.value.status == 502


# --- errors ---------------------------------------------------------------------------


def gemini_error(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": details or []}})


@pytest.mark.parametrize(
    ("code", "status", "error_type", "retryable"),
    [(400, "INVALID_ARGUMENT", "invalid_request_error", False), (400, "FAILED_PRECONDITION", "invalid_request_error",
     False), (403, "PERMISSION_DENIED", "permission_error", False), (404, "NOT_FOUND", "invalid_request_error", False),
     (429, "RESOURCE_EXHAUSTED", "rate_limit_error", True), (500, "INTERNAL", "server_error", True),
     (503, "UNAVAILABLE", "server_error", True), (504, "DEADLINE_EXCEEDED", "server_error", True)],
)  # fmt: skip
def test_error_statuses(code: int, status: str, error_type: str, retryable: bool) -> None:
    error = gemini_adapter().parse_error(code, {}, gemini_error(code, status, "Something."))
    assert (error.status, error.type, error.retryable, error.message) == (code, error_type, retryable, "Something.")
    assert error.to_openai()["error"]["type"] == error_type


def test_rate_limit_retry_after_from_header_or_retry_info() -> None:
    retry_info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"}]
    body = gemini_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", retry_info)
    assert gemini_adapter().parse_error(429, {}, body).retry_after == 38.0
    assert gemini_adapter().parse_error(429, {"retry-after": "5"}, body).retry_after == 5.0
    assert gemini_adapter().parse_error(429, {}, gemini_error(429, "RESOURCE_EXHAUSTED", "x")).retry_after is None


def test_invalid_api_key_is_an_authentication_error() -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    error = gemini_adapter().parse_error(400, {}, gemini_error(400, "INVALID_ARGUMENT", "API key not valid.", details))
    assert (error.status, error.type, error.code) == (401, "authentication_error", "invalid_api_key")
    assert error.client_status() == 502  # our key, not the caller's


def test_model_not_found_code() -> None:
    body = gemini_error(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta")
    error = gemini_adapter().parse_error(404, {}, body)
    assert (error.status, error.code, error.retryable) == (404, "model_not_found", False)


def test_context_window_error() -> None:
    message = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
    error = gemini_adapter().parse_error(400, {}, gemini_error(400, "INVALID_ARGUMENT", message))
    assert error.context_window
    assert error.code == "context_length_exceeded"
    assert not gemini_adapter().parse_error(400, {}, gemini_error(400, "INVALID_ARGUMENT", "Bad role.")).context_window


def test_non_json_and_array_error_bodies() -> None:
    error = error_from_body(502, {}, b"<html>Bad Gateway</html>")  # nothing of a page is relayed: only the status
    assert error.status == 502 and error.retryable
    assert error.message == "Gemini: The upstream provider answered HTTP 502."
    error = error_from_body(503, {}, b"")
    assert error.status == 503 and error.message == "Gemini: The upstream provider answered HTTP 503."
    wrapped = b"[" + gemini_error(404, "NOT_FOUND", "models/x is not found") + b"]"
    assert error_from_body(404, {}, wrapped).message == "models/x is not found"


# --- flavours and credentials ---------------------------------------------------------


def test_gemini_urls_and_key_header() -> None:
    adapter = gemini_adapter(api_key=Secret("AIza-key"))
    assert adapter.kind == "gemini"
    assert adapter.inlines_image_urls
    call = adapter.to_upstream(chat_request(), "gemini-1.5-pro")
    assert call.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-1.5-pro:generateContent"
    assert call.headers == {"content-type": "application/json", "x-goog-api-key": "AIza-key"}
    assert call.body is not None and orjson.loads(call.body)["contents"][0]["role"] == "user"
    streaming = ApiRequest(Operation.CHAT, chat(USER, stream=True), public_model="gemini-1.5-pro", stream=True)
    assert adapter.to_upstream(streaming, "gemini-1.5-pro").url.endswith(":streamGenerateContent?alt=sse")
    embed = adapter.to_upstream(embeddings_request(input="a"), "text-embedding-004")
    assert embed.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")


def test_vertex_urls_and_bearer_token() -> None:
    adapter = vertex_adapter(api_key=Secret("ya29.token"))
    assert adapter.kind == "vertex"
    call = adapter.to_upstream(chat_request(), "gemini-1.5-pro-002")
    assert call.url == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-project/locations/europe-west4"
        "/publishers/google/models/gemini-1.5-pro-002:generateContent"
    )
    assert call.headers["authorization"] == "Bearer ya29.token"
    assert "x-goog-api-key" not in call.headers
    assert adapter.to_upstream(embeddings_request(input="a"), "text-embedding-004").url.endswith(":predict")


def test_vertex_token_file_is_re_read_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    adapter = vertex_adapter(token_file=str(token_file))
    assert adapter.to_upstream(chat_request(), "m").headers["authorization"] == "Bearer first"
    token_file.write_text("second\n")
    os.utime(token_file, (1, 1))  # a different mtime, whatever the clock's resolution
    # within the check interval the cached token is used: no disk access per request
    assert adapter.to_upstream(chat_request(), "m").headers["authorization"] == "Bearer first"
    monkeypatch.setattr(vertex_auth, "TOKEN_FILE_CHECK_SECONDS", 0.0)
    assert adapter.to_upstream(chat_request(), "m").headers["authorization"] == "Bearer second"
    token_file.unlink()
    with pytest.raises(UpstreamError) as caught:
        adapter.to_upstream(chat_request(), "m")
    assert caught.value.status == 503


async def test_vertex_token_command_runs_on_refresh() -> None:
    command = f"{sys.executable} -c \"print('ya29.from-command')\""
    adapter = vertex_adapter(token_command=command)
    with pytest.raises(UpstreamError) as caught:
        adapter.to_upstream(chat_request(), "m")  # no token yet: retryable, and a refresh starts
    assert caught.value.status == 503 and caught.value.retryable
    await asyncio.wait_for(adapter.refresh_credentials(), 30)
    assert adapter.to_upstream(chat_request(), "m").headers["authorization"] == "Bearer ya29.from-command"


async def test_vertex_token_command_failure_is_reported() -> None:
    adapter = vertex_adapter(token_command=f'{sys.executable} -c "raise SystemExit(3)"')
    with pytest.raises(UpstreamError) as caught:
        await asyncio.wait_for(adapter.refresh_credentials(), 30)
    assert "(3)" in caught.value.message


def test_simulated_provider_without_key_gets_a_placeholder_key() -> None:
    adapter = gemini_adapter(simulated=True)
    assert adapter.to_upstream(chat_request(), "gemini-1.5-pro").headers["x-goog-api-key"] == "simulator-key"
    # the demo never runs a configured token command against a simulator
    vertex = vertex_adapter(simulated=True, token_command="gcloud auth print-access-token")
    assert vertex.to_upstream(chat_request(), "gemini-1.5-pro").headers["authorization"] == "Bearer simulator-key"
