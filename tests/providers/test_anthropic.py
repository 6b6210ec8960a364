"""OpenAI -> Anthropic request translation, Anthropic -> OpenAI responses and errors."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from providers.anthropic import ADAPTERS, to_anthropic_request
from providers.base import ApiRequest, InlineImage, Operation, UpstreamError
from providers.settings import ProviderSettings, Secret

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake png").decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0 fake jpeg").decode()
GIF = base64.b64encode(b"GIF89a fake gif").decode()
WEBP = base64.b64encode(b"RIFF\x10\x00\x00\x00WEBPVP8 fake webp").decode()
BMP = base64.b64encode(b"BM fake bmp").decode()


def api_request(body: dict[str, Any], **kwargs: Any) -> ApiRequest:
    return ApiRequest(Operation.CHAT, body, public_model="claude-3-5-sonnet", **kwargs)


def translate(body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return to_anthropic_request(api_request(body, **kwargs), "claude-3-5-sonnet-20241022")


def rejected(body: dict[str, Any]) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        translate(body)
    assert caught.value.status == 400 and caught.value.type == "invalid_request_error"
    assert not caught.value.retryable
    return caught.value


def anthropic_adapter(kind: str = "anthropic", **fields: Any) -> Any:
    config = ProviderSettings(name="p", kind=kind, api_key=Secret("sk-ant-test"), **fields)
    return ADAPTERS[kind](config)


USER = {"role": "user", "content": "Hi"}


# --- to_upstream and variants -----------------------------------------------------


def test_anthropic_call_url_headers_and_body() -> None:
    adapter = anthropic_adapter(base_url="https://api.anthropic.com/")
    call = adapter.to_upstream(api_request({"model": "claude-3-5-sonnet", "messages": [USER]}), "claude-x")
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.headers == {
        "content-type": "application/json",
        "x-api-key": "sk-ant-test",
        "anthropic-version": "2023-06-01",
    }
    body = orjson.loads(call.body)
    assert body == {
        "model": "claude-x",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    assert adapter.kind == "anthropic" and not adapter.inlines_image_urls


@pytest.mark.parametrize(("stream", "method"), [(False, "rawPredict"), (True, "streamRawPredict")])
def test_vertex_call(stream: bool, method: str) -> None:
    adapter = anthropic_adapter(
        "anthropic-vertex",
        base_url="https://europe-west1-aiplatform.googleapis.com",
        project="proj",
        location="europe-west1",
    )
    request = api_request({"model": "m", "messages": [USER], "stream": stream}, stream=stream)
    call = adapter.to_upstream(request, "claude-3-5-sonnet-v2@20241022")
    assert call.url == (
        "https://europe-west1-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west1"
        f"/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:{method}"
    )
    assert call.headers["authorization"] == "Bearer sk-ant-test"
    assert "x-api-key" not in call.headers and "anthropic-version" not in call.headers
    body = orjson.loads(call.body)
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert body.get("stream", False) is stream
    assert adapter.inlines_image_urls


# --- messages --------------------------------------------------------------------


def test_system_and_developer_messages_anywhere_go_to_system_in_order() -> None:
    body = translate(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                USER,
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "assistant", "content": "Bonjour"},
                {"role": "system", "content": ""},
                {"role": "user", "content": "Encore"},
            ]
        }
    )
    assert body["system"] == [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_consecutive_same_role_messages_are_merged() -> None:
    body = translate(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "system", "content": "between"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_empty_turns_are_left_out() -> None:
    body = translate(
        {
            "messages": [
                USER,
                {"role": "assistant", "content": ""},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "again"}]},
            ]
        }
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "again"}]}
    ]


def test_tool_calls_and_results_of_one_turn_in_one_user_message() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    body = translate(
        {
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
                {"role": "user", "content": "Thanks"},
            ]
        }
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
            {"type": "text", "text": "Thanks"},
        ],
    }
    assert len(body["messages"]) == 3


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_invalid_tool_call_arguments_are_rejected(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    error = rejected({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call]}]})
    assert error.param == "messages[1].tool_calls[0].function.arguments"


def test_data_uri_image_and_https_url() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = translate({"messages": [{"role": "user", "content": parts}]})
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_vertex_uses_the_routers_fetched_image() -> None:
    url = "https://example.com/cat.webp"
    adapter = anthropic_adapter("anthropic-vertex", base_url="https://x", project="p", location="l")
    message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
    request = api_request({"messages": [message]}, images={url: InlineImage("image/webp", WEBP)})
    body = orjson.loads(adapter.to_upstream(request, "claude").body)
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": WEBP}}
    ]
    with pytest.raises(UpstreamError) as caught:  # not fetched: never forwarded as a URL vertex cannot take
        adapter.to_upstream(api_request({"messages": [message]}), "claude")
    assert caught.value.status == 400 and caught.value.param == "messages[0].content[0]"


@pytest.mark.parametrize(
    "url",
    ["data:image/bmp;base64," + BMP, "data:image/png;base64,@@not base64@@", "data:image/png," + PNG, "http://x/a.png"],
)
def test_bad_images_are_rejected(url: str) -> None:
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": url}}],
    }
    assert rejected({"messages": [message]}).param == "messages[0].content[1]"


@pytest.mark.parametrize(
    ("declared", "data", "sent"),
    [
        ("image/jpeg", PNG, "image/png"),  # the guide labels every file jpeg: the bytes decide
        ("image/jpg", JPEG, "image/jpeg"),
        ("image/png", GIF, "image/gif"),
        ("image/bmp", WEBP, "image/webp"),
        ("image/webp", base64.b64encode(b"unknown bytes").decode(), "image/webp"),  # nothing shown: as declared
    ],
)
def test_image_type_is_what_the_bytes_show(declared: str, data: str, sent: str) -> None:
    for header in (f"{declared};base64", f"{declared};name=cat;base64"):
        part = {"type": "image_url", "image_url": {"url": f"data:{header},{data}"}}
        body = translate({"messages": [{"role": "user", "content": [part]}]})
        assert body["messages"][0]["content"] == [
            {"type": "image", "source": {"type": "base64", "media_type": sent, "data": data}}
        ]


def test_audio_part_is_rejected() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert rejected({"messages": [{"role": "user", "content": [part]}]}).param == "messages[0].content[0]"


# --- parameters ------------------------------------------------------------------


def test_sampling_parameters() -> None:
    body = translate(
        {
            "messages": [USER],
            "max_tokens": 100,
            "max_completion_tokens": 50,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "alice",
            "n": 1,
            "seed": 3,
            "logprobs": False,
            "stream_options": {"include_usage": True},
            "parallel_tool_calls": True,
            "service_tier": "auto",
            "store": False,
            "metadata": {"a": "b"},
            "presence_penalty": 0,
            "response_format": {"type": "text"},
        }
    )
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == {
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "alice"},
    }
    assert translate({"messages": [USER], "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


def test_max_tokens_defaults_to_the_models_max_output_length() -> None:
    assert translate({"messages": [USER]}, max_output_length=8192)["max_tokens"] == 8192
    assert translate({"messages": [USER], "max_tokens": 7}, max_output_length=8192)["max_tokens"] == 7
    assert translate({"messages": [USER]})["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("temperature", 1.5),
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("logit_bias", {"50256": -100}),
        ("response_format", {"type": "json_object"}),
        ("response_format", {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array"}}}),
        ("reasoning_effort", "high"),
        ("functions", [{"name": "f"}]),
        ("modalities", ["text", "audio"]),
        ("max_tokens", 0),
        ("some_unknown_field", 1),
    ],
)
def test_parameters_without_equivalent_are_rejected_by_name(param: str, value: Any) -> None:
    error = rejected({"messages": [USER], param: value})
    assert error.param == param and param in error.message


def test_null_parameters_are_as_if_absent() -> None:
    names = "audio reasoning_effort functions function_call web_search_options verbosity temperature stop tools"
    nulls = dict.fromkeys([*names.split(), "tool_choice", "response_format", "user"])
    body = translate({"messages": [USER], **nulls})
    assert set(body) == {"model", "max_tokens", "messages"}


# --- structured output ----------------------------------------------------------

CITY_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "description": "A city",
        "strict": True,
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
}


def test_json_schema_becomes_one_forced_tool() -> None:
    body = translate({"messages": [USER], "response_format": CITY_FORMAT})
    schema = CITY_FORMAT["json_schema"]["schema"]  # type: ignore[index]
    assert body["tools"] == [{"name": "city", "description": "A city", "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": "city"}


def test_json_schema_with_tools_is_rejected() -> None:
    error = rejected({"messages": [USER], "response_format": CITY_FORMAT, "tools": [NO_PARAMS]})
    assert error.param == "response_format"


def test_json_schema_answer_comes_back_as_content() -> None:
    upstream = {
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "city", "input": {"name": "Paris"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 6},
    }
    request = api_request({"messages": [USER], "response_format": CITY_FORMAT})
    body, _ = anthropic_adapter().from_upstream(request, orjson.dumps(upstream))
    choice = orjson.loads(body)["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": '{"name":"Paris"}', "refusal": None}
    assert choice["finish_reason"] == "stop"


# --- tools -----------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        "strict": True,
    },
}
NO_PARAMS = {"type": "function", "function": {"name": "now"}}


def test_tools_become_input_schemas() -> None:
    body = translate({"messages": [USER], "tools": [WEATHER, NO_PARAMS]})
    assert body["tools"] == [
        {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "now"}}, None, {"type": "tool", "name": "now"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    request: dict[str, Any] = {"messages": [USER], "tools": [WEATHER, NO_PARAMS], "tool_choice": choice}
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    assert translate(request)["tool_choice"] == expected


def test_foreign_tool_call_ids_are_mapped_alike_and_empty_results_have_no_content() -> None:
    call = {"id": "functions.now:0", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    body = translate({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call]},
                                   {"role": "tool", "tool_call_id": "functions.now:0", "content": ""}]})  # fmt: skip
    assert body["messages"][1]["content"][0]["id"] == "functions_now_0"
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "functions_now_0"}]


def test_history_with_tool_calls_but_no_tools_declares_them_uncallable() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    history = [USER, {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "call_2"}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
               {"role": "tool", "tool_call_id": "call_2", "content": "noon"}]  # fmt: skip
    for choice in (None, "auto", "none"):
        body = translate({"messages": history, "tool_choice": choice})
        # The API refuses tool blocks without tools; none were offered, so none may be called.
        assert body["tools"] == [{"name": "now", "input_schema": {"type": "object"}}]
        assert body["tool_choice"] == {"type": "none"}
    assert "tools" not in translate({"messages": [USER]})
    with_tools = translate({"messages": history, "tools": [WEATHER]})
    assert [t["name"] for t in with_tools["tools"]] == ["get_current_weather"] and "tool_choice" not in with_tools


def test_non_function_tools_are_rejected() -> None:
    error = rejected({"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]})
    assert error.param == "tools[0]"


# --- responses -------------------------------------------------------------------


def test_text_response() -> None:
    upstream = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-opus-20240229",
        "content": [{"type": "text", "text": "The capital of France is Paris."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 20,
            "output_tokens": 10,
            "cache_creation_input_tokens": 2,
            "cache_read_input_tokens": 3,
        },
    }
    body, usage = anthropic_adapter().from_upstream(api_request({}), orjson.dumps(upstream))
    response = orjson.loads(body)
    assert response["object"] == "chat.completion" and response["id"].startswith("chatcmpl-")
    assert response["model"] == "claude-3-5-sonnet"
    assert response["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert response["usage"] == {
        "prompt_tokens": 25,
        "completion_tokens": 10,
        "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert (usage.prompt_tokens, usage.completion_tokens) == (25, 10)


def test_tool_use_response() -> None:
    upstream = {
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 6},
    }
    body, _ = anthropic_adapter().from_upstream(api_request({}), orjson.dumps(upstream))
    choice = orjson.loads(body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(stop_reason: str, finish_reason: str) -> None:
    upstream = {"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason, "usage": {}}
    body, _ = anthropic_adapter().from_upstream(api_request({}), orjson.dumps(upstream))
    assert orjson.loads(body)["choices"][0]["finish_reason"] == finish_reason


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "anthropic_type", "openai_type", "retryable"),
    [
        (400, "invalid_request_error", "invalid_request_error", False),
        (401, "authentication_error", "authentication_error", False),
        (403, "permission_error", "permission_error", False),
        (404, "not_found_error", "not_found_error", False),
        (413, "request_too_large", "invalid_request_error", False),
        (429, "rate_limit_error", "rate_limit_error", True),
        (500, "api_error", "server_error", True),
        (529, "overloaded_error", "server_error", True),
    ],
)
def test_error_statuses(status: int, anthropic_type: str, openai_type: str, retryable: bool) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": anthropic_type, "message": "it failed"}, "request_id": "r"})
    error = anthropic_adapter().parse_error(status, {"retry-after": "7"}, body)
    assert (error.status, error.type, error.code, error.retryable) == (status, openai_type, anthropic_type, retryable)
    assert "it failed" in error.message
    assert error.retry_after == (7.0 if status in (429, 529) else None)
    assert not error.context_window


def test_prompt_too_long_is_a_context_window_error() -> None:
    message = "prompt is too long: 210000 tokens > 200000 maximum"
    body = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": message}})
    assert anthropic_adapter().parse_error(400, {}, body).context_window


def test_non_json_error_body() -> None:
    # Nothing of an HTML or text body reaches the client (it may hold a traceback or a token): only the status.
    error = anthropic_adapter().parse_error(502, {}, b"<html>" + b"x" * 5000 + b"</html>")
    assert error.status == 502 and error.retryable
    assert error.message == "anthropic: The upstream provider answered HTTP 502."


def test_vertex_google_style_error() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}})
    error = anthropic_adapter().parse_error(429, {}, body)
    assert error.status == 429 and error.type == "rate_limit_error" and "Quota exceeded" in error.message


def test_missing_credentials_leave_the_header_out(tmp_path: Any) -> None:
    config = ProviderSettings(name="p", kind="anthropic", base_url="https://a")
    call = ADAPTERS["anthropic"](config).to_upstream(api_request({"messages": [USER]}), "m")
    assert "x-api-key" not in call.headers and call.headers["anthropic-version"] == "2023-06-01"
    token_file = tmp_path / "token"
    token_file.write_text("ya29.token\n")
    vertex = ProviderSettings(name="v", kind="anthropic-vertex", base_url="https://v", project="p", location="l",
                            token_file=str(token_file))  # fmt: skip
    call = ADAPTERS["anthropic-vertex"](vertex).to_upstream(api_request({"messages": [USER]}), "m")
    assert call.headers["authorization"] == "Bearer ya29.token"
    keyless = ProviderSettings(name="v", kind="anthropic-vertex", base_url="https://v", project="p", location="l")
    assert "authorization" not in ADAPTERS["anthropic-vertex"](keyless).to_upstream(api_request({"messages": [USER]}),
                                                                                  "m").headers  # fmt: skip


def test_vertex_token_file_missing_is_a_503_not_a_crash(tmp_path: Any) -> None:
    vertex = ProviderSettings(name="v", kind="anthropic-vertex", base_url="https://v", project="p", location="l",
                            token_file=str(tmp_path / "not-yet-written"))  # fmt: skip
    with pytest.raises(UpstreamError) as caught:
        ADAPTERS["anthropic-vertex"](vertex).to_upstream(api_request({"messages": [USER]}), "m")
    assert caught.value.status == 503


async def test_vertex_token_command() -> None:
    vertex = ProviderSettings(name="v", kind="anthropic-vertex", base_url="https://v", project="p", location="l",
                            token_command="echo ya29.from-command")  # fmt: skip
    adapter = ADAPTERS["anthropic-vertex"](vertex)
    await adapter.refresh_credentials()
    call = adapter.to_upstream(api_request({"messages": [USER]}), "m")
    assert call.headers["authorization"] == "Bearer ya29.from-command"
