"""The Gemini stream translator on the recorded streams, split at hostile boundaries."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from providers.base import SSEEvent, StreamState, UpstreamError, Usage
from providers.gemini_stream import GeminiStreamTranslator

# The recorded samples, copied byte for byte into the repository (tests/samples/SOURCES.md).
from tests.conftest import SAMPLES
from tests.streams import translate_stream

GEMINI_SAMPLES = [
    "gemini-stream-text.sse",
    "gemini-stream-function-call.sse",
    "gemini-stream-text-after-function-response.sse",
]


def translate(body: bytes, piece: int | None, include_usage: bool = True) -> tuple[list[Any], StreamState]:
    state = StreamState(public_model="gemini-1.5-pro", include_usage=include_usage, id="chatcmpl-x", created=7)
    return translate_stream(GeminiStreamTranslator(state), body, piece), state


def without_call_ids(chunks: list[Any]) -> list[Any]:
    """Tool-call ids are minted at random: compare everything else."""
    text = orjson.dumps(chunks).decode()
    return orjson.loads(re.sub(r'"call_[0-9a-f]{24}"', '"call_ID"', text))  # type: ignore[no-any-return]


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def event(payload: dict[str, Any]) -> SSEEvent:
    return SSEEvent(None, orjson.dumps(payload))


def test_samples_are_crlf_framed() -> None:
    for name in GEMINI_SAMPLES:
        assert b"\r\n\r\n" in sample(name)


@pytest.mark.parametrize("name", GEMINI_SAMPLES)
@pytest.mark.parametrize("piece", [1, 7, 64])
def test_any_split_translates_identically(name: str, piece: int) -> None:
    whole, whole_state = translate(sample(name), None)
    pieces, pieces_state = translate(sample(name), piece)
    assert without_call_ids(pieces) == without_call_ids(whole)
    assert pieces_state.usage == whole_state.usage
    assert pieces_state.finish_reason == whole_state.finish_reason


@pytest.mark.parametrize("name", GEMINI_SAMPLES)
def test_chunks_parse_as_the_openai_client_types(name: str) -> None:
    chunks, _ = translate(sample(name), 7)
    parsed = [ChatCompletionChunk.model_validate(chunk) for chunk in chunks]
    assert parsed[-1].usage is not None and parsed[-1].choices == []
    assert parsed[-2].choices[0].finish_reason in ("stop", "tool_calls")


def test_text_sample() -> None:
    chunks, state = translate(sample("gemini-stream-text.sse"), 7)
    for chunk in chunks:
        assert chunk["id"] == "chatcmpl-x"
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "gemini-1.5-pro"
        assert chunk["created"] == 7
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    text = "".join(d.get("content", "") for d in deltas)
    assert text == "\n".join(str(n) for n in range(1, 31))
    # finish_reason in a chunk of its own, with an empty delta
    assert chunks[-2]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    # the usage chunk: the last usageMetadata, thoughts counted as completion tokens
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 18,
        "completion_tokens": 80 + 35,
        "total_tokens": 133,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 35},
    }
    assert state.usage == Usage(prompt_tokens=18, completion_tokens=115, reasoning_tokens=35)
    assert state.finish_reason == "stop"
    assert state.done
    assert state.completion_chars == len(text)


def test_function_call_sample() -> None:
    chunks, state = translate(sample("gemini-stream-function-call.sse"), 1)
    assert len(chunks) == 3
    delta = chunks[0]["choices"][0]["delta"]
    assert delta["role"] == "assistant"
    [call] = delta["tool_calls"]
    assert call["index"] == 0
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert call["type"] == "function"
    assert call["function"] == {"name": "get_capital", "arguments": '{"country":"France"}'}
    # a function call ends with Gemini's STOP: OpenAI says tool_calls
    assert chunks[1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}
    assert chunks[2]["usage"]["prompt_tokens"] == 52
    assert chunks[2]["usage"]["completion_tokens"] == 5
    assert state.finish_reason == "tool_calls"


def test_text_after_function_response_keeps_the_latest_usage() -> None:
    chunks, state = translate(sample("gemini-stream-text-after-function-response.sse"), 64)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "The temperature in Paris is 30°C.\n"
    # the first chunk says 169 prompt tokens, the last 79: the last one counts
    assert state.usage == Usage(prompt_tokens=79, completion_tokens=12)
    assert chunks[-1]["usage"]["total_tokens"] == 91


def test_without_include_usage_no_usage_chunk() -> None:
    chunks, state = translate(sample("gemini-stream-text.sse"), None, include_usage=False)
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert state.usage == Usage(prompt_tokens=18, completion_tokens=115, reasoning_tokens=35)


def new_translator(include_usage: bool = False) -> GeminiStreamTranslator:
    return GeminiStreamTranslator(StreamState(public_model="gemini-1.5-pro", include_usage=include_usage))


def test_parallel_calls_get_ordinal_indexes_and_distinct_ids() -> None:
    translator = new_translator()
    calls = [{"functionCall": {"name": "get_weather", "args": {"city": city}}} for city in ("Paris", "Berlin")]
    first = orjson.loads(translator.feed(event({"candidates": [{"content": {"role": "model", "parts": calls}}]}))[0])
    later = {"candidates": [{"content": {"role": "model", "parts": calls[:1]}, "finishReason": "STOP"}]}
    second = [orjson.loads(p) for p in translator.feed(event(later))]
    deltas = first["choices"][0]["delta"]["tool_calls"] + second[0]["choices"][0]["delta"]["tool_calls"]
    assert [d["index"] for d in deltas] == [0, 1, 2]
    assert len({d["id"] for d in deltas}) == 3
    assert [orjson.loads(d["function"]["arguments"]) for d in deltas] == [
        {"city": "Paris"},
        {"city": "Berlin"},
        {"city": "Paris"},
    ]
    assert second[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("IMAGE_SAFETY", "content_filter"), ("OTHER", "stop")],
)  # fmt: skip
def test_finish_reasons(gemini: str, openai: str) -> None:
    translator = new_translator()
    payloads = translator.feed(event({"candidates": [{"finishReason": gemini, "index": 0}]}))
    chunks = [orjson.loads(p) for p in payloads]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] == openai
    assert translator.state.finish_reason == openai


def test_thought_parts_are_reasoning_content_not_content() -> None:
    translator = new_translator()
    parts = [{"text": "thinking...", "thought": True}, {"text": "Answer"}]
    payloads = translator.feed(event({"candidates": [{"content": {"role": "model", "parts": parts}}]}))
    delta = orjson.loads(payloads[0])["choices"][0]["delta"]
    assert delta == {"role": "assistant", "reasoning_content": "thinking...", "content": "Answer"}


def test_logprobs_ride_on_the_content_chunk() -> None:
    translator = new_translator()
    logprobs_result = {"chosenCandidates": [{"token": "Hi", "logProbability": -0.25}], "topCandidates": []}
    candidate = {"content": {"role": "model", "parts": [{"text": "Hi"}]}, "logprobsResult": logprobs_result}
    [payload] = translator.feed(event({"candidates": [candidate]}))
    assert orjson.loads(payload)["choices"][0]["logprobs"] == {
        "content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": []}],
        "refusal": None,
    }


def test_several_candidates_become_several_choices() -> None:
    translator = new_translator()
    candidates = [{"index": i, "content": {"role": "model", "parts": [{"text": f"answer {i}"}]}} for i in (0, 1)]
    chunks = [orjson.loads(p) for p in translator.feed(event({"candidates": candidates}))]
    assert [c["choices"][0]["index"] for c in chunks] == [0, 1]
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)
    translator.feed(event({"candidates": [{"index": 0, "finishReason": "STOP"}]}))
    assert not translator.state.done  # choice 1 has not finished yet
    translator.feed(event({"candidates": [{"index": 1, "finishReason": "STOP"}]}))
    assert translator.state.done


def test_error_event_raises() -> None:
    translator = new_translator()
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamError) as caught:
        translator.feed(event(error))
    assert caught.value.status == 503
    assert caught.value.retryable
    assert caught.value.message == "The model is overloaded."


def test_blocked_prompt_raises_content_filter() -> None:
    translator = new_translator()
    with pytest.raises(UpstreamError) as caught:
        translator.feed(event({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}}))
    assert caught.value.status == 400
    assert caught.value.code == "content_filter"
    assert not caught.value.retryable


def test_event_that_is_not_json_raises() -> None:
    with pytest.raises(UpstreamError) as caught:
        new_translator().feed(SSEEvent(None, b"<html>"))
    assert caught.value.status == 502


def test_stream_ending_without_finish_reason_raises() -> None:
    translator = new_translator(include_usage=True)
    translator.feed(event({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hal"}]}}]}))
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.status == 502


def test_no_usage_chunk_of_its_own_when_gemini_sends_none() -> None:
    """The relay estimates missing usage and writes the one usage chunk: the translator adds none."""
    translator = new_translator(include_usage=True)
    parts = [{"text": "12345678"}]
    translator.feed(event({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}))
    # The router estimates and sends the usage chunk (router/upstream/relay.py): the translator sends none of its own.
    assert translator.finish() == []
    assert translator.state.usage is None and translator.state.completion_chars == 8
