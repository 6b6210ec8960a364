"""The Anthropic stream translator on the recorded streams, split at hostile boundaries."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers.anthropic_stream import AnthropicStreamTranslator
from providers.base import SSEEvent, StreamState, UpstreamError

# The recorded samples, copied byte for byte into the repository (tests/samples/SOURCES.md).
from tests.conftest import SAMPLES
from tests.streams import translate_stream


def translate(body: bytes, piece: int | None, include_usage: bool = True) -> tuple[list[Any], StreamState]:
    state = StreamState(public_model="claude-3-5-sonnet", include_usage=include_usage, id="chatcmpl-x", created=7)
    return translate_stream(AnthropicStreamTranslator(state), body, piece), state


def event(data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(str(data["type"]), orjson.dumps(data))


@pytest.mark.parametrize("sample", ["anthropic-stream-text.sse", "anthropic-stream-tool-use.sse"])
@pytest.mark.parametrize("piece", [1, 7, 64])
def test_any_split_translates_identically(sample: str, piece: int) -> None:
    body = (SAMPLES / sample).read_bytes()
    whole, _ = translate(body, None)
    pieces, _ = translate(body, piece)
    assert pieces == whole
    assert len(whole) >= 4


def test_text_sample() -> None:
    chunks, state = translate((SAMPLES / "anthropic-stream-text.sse").read_bytes(), 7)
    for chunk in chunks:
        assert (chunk["id"], chunk["created"], chunk["model"]) == ("chatcmpl-x", 7, "claude-3-5-sonnet")
        assert chunk["object"] == "chat.completion.chunk"
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "2"},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, "stop"]
    assert all(c["usage"] is None for c in chunks[:-1])  # include_usage: null until the last, as OpenAI
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 5,
        "total_tokens": 25,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert state.finish_reason == "stop" and state.done
    assert (state.usage.prompt_tokens, state.usage.completion_tokens) == (20, 5)  # type: ignore[union-attr]


def test_tool_use_sample() -> None:
    # The recording has no trailing newline: its message_stop only comes out of flush().
    chunks, state = translate((SAMPLES / "anthropic-stream-tool-use.sse").read_bytes(), 1)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == "I'll check the current weather in Paris for you."
    calls = [call for d in deltas for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(c) == {"index", "function"} and c["index"] == 0 for c in calls[1:])
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "Paris"}
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish == [None] * (len(finish) - 1) + ["tool_calls"]
    assert deltas[-1] == {}
    assert chunks[-1] == {
        "id": "chatcmpl-x",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "claude-3-5-sonnet",
        "choices": [],
        "usage": {
            "prompt_tokens": 377,
            "completion_tokens": 65,
            "total_tokens": 442,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }
    assert state.finish_reason == "tool_calls" and state.done


def test_without_include_usage_no_usage_chunk_but_state_has_usage() -> None:
    chunks, state = translate((SAMPLES / "anthropic-stream-text.sse").read_bytes(), 64, include_usage=False)
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert state.usage is not None and state.usage.total_tokens == 25


def two_tool_stream() -> list[SSEEvent]:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 1, "output_tokens": 1}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_1", "content": [], "usage": usage}}
    ]
    events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Both."}})
    events.append({"type": "content_block_stop", "index": 0})
    for index, (call_id, city) in enumerate([("toolu_a", "Hamburg"), ("toolu_b", "Paris")], start=1):
        block = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        for fragment in ["", '{"city": "', city, '"}']:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "ping"})
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}})
    events.append({"type": "message_stop"})
    return [event(e) for e in events]


def test_two_tool_calls_get_ordinals_not_block_indexes() -> None:
    state = StreamState(public_model="m", include_usage=True)
    translator = AnthropicStreamTranslator(state)
    chunks = [orjson.loads(p) for e in two_tool_stream() for p in translator.feed(e)]
    calls = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    announced = [(c["index"], c["id"]) for c in calls if "id" in c]
    assert announced == [(0, "toolu_a"), (1, "toolu_b")]
    by_index: dict[int, str] = {}
    for call in calls:
        by_index[call["index"]] = by_index.get(call["index"], "") + call["function"]["arguments"]
    assert by_index == {0: '{"city": "Hamburg"}', 1: '{"city": "Paris"}'}
    assert not any(c["function"]["arguments"] == "" for c in calls if "id" not in c)  # empty fragments skipped
    assert chunks[-1]["usage"]["prompt_tokens"] == 15 and chunks[-1]["usage"]["completion_tokens"] == 30
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert translator.finish() == []  # the usage chunk went out once, at message_stop


def test_error_event_raises_retryable_overloaded() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    translator.feed(event({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}))
    with pytest.raises(UpstreamError) as caught:
        translator.feed(event({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert caught.value.status == 529 and caught.value.retryable
    assert caught.value.type == "server_error" and "Overloaded" in caught.value.message


def test_error_event_invalid_request_is_not_retryable() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    with pytest.raises(UpstreamError) as caught:
        translator.feed(event({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}))
    assert caught.value.status == 400 and not caught.value.retryable


def test_stream_cut_before_stop_reason_is_an_error_not_a_silent_stop() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=True))
    translator.feed(event({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}))
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.status == 502


def test_unknown_events_are_skipped_and_thinking_is_reasoning_content() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    assert translator.feed(event({"type": "brand_new_event", "x": 1})) == []
    thinking = {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}
    assert translator.feed(event(thinking)) == []
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}
    [chunk] = translator.feed(event(delta))
    assert orjson.loads(chunk)["choices"][0]["delta"] == {"reasoning_content": "hm"}


def test_non_json_event_is_a_bad_gateway() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    with pytest.raises(UpstreamError) as caught:
        translator.feed(SSEEvent("message_start", b"<html>"))
    assert caught.value.status == 502


def test_structured_output_tool_streams_as_content() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False), structured_name="city")
    block = {"type": "tool_use", "id": "toolu_1", "name": "city", "input": {}}
    stream: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"na'}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": 'me": 1}'}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    chunks = [orjson.loads(p) for e in stream for p in translator.feed(event(e))]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert all("tool_calls" not in d for d in deltas)
    assert "".join(d.get("content", "") for d in deltas) == '{"name": 1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" == translator.state.finish_reason


def empty_input_stream(name: str) -> list[dict[str, Any]]:
    """A call to a tool without parameters, as the API streams it: one "" fragment."""
    block = {"type": "tool_use", "id": "toolu_now", "name": name, "input": {}}
    return [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": block},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]


def test_tool_call_without_arguments_streams_an_empty_object() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    chunks = [orjson.loads(p) for e in empty_input_stream("now") for p in translator.feed(event(e))]
    calls = [call for c in chunks for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls == [
        {"index": 0, "id": "toolu_now", "type": "function", "function": {"name": "now", "arguments": ""}},
        {"index": 0, "function": {"arguments": "{}"}},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_call_with_arguments_gets_nothing_more_at_its_stop() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False))
    chunks = [orjson.loads(p) for e in two_tool_stream() for p in translator.feed(e)]
    calls = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert "{}" not in [c["function"]["arguments"] for c in calls]


def test_empty_structured_output_streams_an_empty_object() -> None:
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False), structured_name="x")
    chunks = [orjson.loads(p) for e in empty_input_stream("x") for p in translator.feed(event(e))]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "{}"
