"""The OpenAI-family adapter on recorded bodies: pass-through with the public model,
usage always obtained, the usage chunk only where the client asked, errors normalised."""

from __future__ import annotations

import orjson
import pytest

from providers.base import ApiRequest, Operation, UpstreamError
from providers.openai import ADAPTERS, OpenAIStream
from providers.settings import ProviderSettings, Secret
from providers.sse import SSEDecoder
from tests.conftest import sample_path
from tests.streams import translate_stream

OPENAI = ADAPTERS["openai"](ProviderSettings(name="openai", kind="openai", base_url="https://api.openai.com/v1",
                                             api_key=Secret("sk-up")))
AZURE = ADAPTERS["azure"](ProviderSettings(name="az", kind="azure", base_url="https://x.openai.azure.com",
                                           api_key=Secret("az-key"), api_version="2024-10-21"))


def chat(stream: bool = False, include_usage: bool = False, **body: object) -> ApiRequest:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **body}
    if stream:
        payload["stream"] = True
    return ApiRequest(Operation.CHAT, payload, "gpt-4o", stream, include_usage)


def run_stream(request: ApiRequest, name: str, size: int) -> tuple[list[dict], OpenAIStream]:
    translator = OPENAI.stream_translator(request)
    return translate_stream(translator, sample_path(name).read_bytes(), size), translator


def test_build_call_openai_and_azure() -> None:
    call = OPENAI.to_upstream(chat(stream=True, user="u1", logit_bias={"1": 2}), "gpt-4o-2024-08-06")
    assert call.url == "https://api.openai.com/v1/chat/completions"
    assert call.headers["Authorization"] == "Bearer sk-up"
    body = orjson.loads(call.body or b"")
    assert body["model"] == "gpt-4o-2024-08-06"
    assert body["stream_options"] == {"include_usage": True}
    assert body["user"] == "u1" and body["logit_bias"] == {"1": 2}  # unknown-to-us fields pass through
    az = AZURE.to_upstream(chat(), "gpt4o-deploy")
    assert az.url == "https://x.openai.azure.com/openai/deployments/gpt4o-deploy/chat/completions?api-version=2024-10-21"
    assert az.headers["api-key"] == "az-key" and "Authorization" not in az.headers


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_text_stream_without_usage_requested(size: int) -> None:
    chunks, translator = run_stream(chat(stream=True), "openai-chat-stream-text-usage.sse", size)
    assert all(c["model"] == "gpt-4o" for c in chunks)
    assert all(c["choices"] for c in chunks)  # the usage chunk is left out
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert translator.state.usage is not None and translator.state.usage.total_tokens == 44
    assert translator.state.done


@pytest.mark.parametrize("size", [1, 7, 64])
def test_parallel_tool_calls_pass_through(size: int) -> None:
    chunks, translator = run_stream(chat(stream=True, include_usage=True),
                                    "openai-chat-stream-parallel-tool-calls.sse", size)
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.get("id", "")
                entry["name"] += call.get("function", {}).get("name", "")
                entry["arguments"] += call.get("function", {}).get("arguments", "")
    assert sorted(calls) == [0, 1]
    assert calls[1]["name"] == "get_stock_price"
    for entry in calls.values():
        orjson.loads(entry["arguments"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 209
    assert translator.state.finish_reason == "tool_calls"


def test_azure_filter_chunk_is_dropped() -> None:
    chunks, _ = run_stream(chat(stream=True), "azure-openai-chat-stream-text.sse", 7)
    assert all(c["object"] == "chat.completion.chunk" and c["id"] for c in chunks)
    assert all(c["model"] == "gpt-4o" for c in chunks)


def test_model_rewritten_in_place_without_reserialising() -> None:
    translator = OPENAI.stream_translator(chat(stream=True))
    data = sample_path("openai-chat-stream-text-usage.sse").read_bytes()
    first = SSEDecoder().feed(data)[1]
    [out] = translator.feed(first)
    assert out == first.data.replace(b'"model":"gpt-4o-2024-08-06"', b'"model":"gpt-4o"')


def test_response_model_and_usage() -> None:
    upstream = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": None,
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}}
    body, usage = OPENAI.from_upstream(chat(), orjson.dumps(upstream))
    assert orjson.loads(body)["model"] == "gpt-4o"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.estimated) == (19, 10, False)


def test_garbage_response_is_502() -> None:
    with pytest.raises(UpstreamError) as caught:
        OPENAI.from_upstream(chat(), b"<html>oops</html>")
    assert caught.value.status == 502


@pytest.mark.parametrize(("status", "body", "headers", "expect"), [
    (429, b'{"error": {"message": "Rate limit", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}',
     {"retry-after": "7"}, (429, True, 7.0, "rate_limit_exceeded")),
    (429, b'{"error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}}', {},
     (429, False, None, "insufficient_quota")),
    (400, b'{"object": "error", "message": "bad", "type": "BadRequestError", "param": null, "code": 400}', {},
     (400, False, None, "400")),
    (422, b'{"error": "Input validation error", "error_type": "validation"}', {}, (422, False, None, None)),
    (413, b'{"message": "batch too large", "code": 413, "type": "Validation"}', {}, (413, False, None, "413")),
    (503, b"<html>Service Unavailable</html>", {"retry-after-ms": "1500"}, (503, True, 1.5, None)),
    (400, b'{"error": {"message": "This model\'s maximum context length is 8192 tokens", "code": '
          b'"context_length_exceeded"}}', {}, (400, False, None, "context_length_exceeded")),
])
def test_errors_normalised(status: int, body: bytes, headers: dict[str, str],
                           expect: tuple[int, bool, float | None, str | None]) -> None:
    error = OPENAI.parse_error(status, headers, body)
    assert (error.status, error.retryable, error.retry_after, error.code) == expect
    assert error.message
    if error.code == "context_length_exceeded":
        assert error.context_window


def test_mid_stream_error_event_raises() -> None:
    translator = OPENAI.stream_translator(chat(stream=True))
    from providers.base import SSEEvent

    with pytest.raises(UpstreamError) as caught:
        translator.feed(SSEEvent(None, b'{"error": {"message": "overloaded", "type": "server_error"}}'))
    assert caught.value.message == "overloaded"


def test_usage_out_of_range_is_dropped_from_the_answer_and_left_to_the_router() -> None:
    upstream = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": -1000000, "completion_tokens": 10, "total_tokens": -999990}}
    body, usage = OPENAI.from_upstream(chat(), orjson.dumps(upstream))
    assert usage.estimated and "usage" not in orjson.loads(body)


@pytest.mark.parametrize("logprobs", [
    {"content": [{"token": "a", "logprob": 0.5, "bytes": [97], "top_logprobs": []}]},
    {"content": [{"token": "a", "logprob": -0.5, "bytes": [977], "top_logprobs": []}]},
    {"tokens": ["a"], "token_logprobs": [3.0], "top_logprobs": None, "text_offset": [0]},
    {"tokens": ["a"], "token_logprobs": [None], "top_logprobs": [{"a": 2}], "text_offset": [0]},
    {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": None, "text_offset": [-4]},
])
def test_logprobs_out_of_range_are_a_502(logprobs: dict[str, object]) -> None:
    upstream = {"id": "c", "object": "text_completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "text": "a", "logprobs": logprobs, "finish_reason": "stop"}]}
    with pytest.raises(UpstreamError) as caught:
        OPENAI.from_upstream(chat(), orjson.dumps(upstream))
    assert caught.value.status == 502 and caught.value.code == "upstream_malformed"


def test_an_html_error_body_is_not_relayed() -> None:
    error = OPENAI.parse_error(500, {}, b"<html><pre>Traceback ... token=sk-abc123456789xyz</pre></html>")
    assert error.message == "The upstream provider answered HTTP 500."
