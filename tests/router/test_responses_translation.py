"""The Responses API translators on recorded bodies: the native pass-through (Responses
events relayed, model rewritten, usage read) and the ingress (canonical chat chunks to the
Responses event sequence), each fed whole and split at 1, 7 and 64 bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from providers.base import SSEEvent, StreamState, UpstreamError
from providers.openai import OpenAIStream
from providers.openai_responses import ResponsesPassthroughStream, passthrough_answer
from router.errors import GatewayError
from router.http.ingress import responses_output as out
from router.http.ingress.responses_request import to_chat
from router.http.ingress.responses_stream import PassthroughStream, ResponsesStream
from tests.streams import translate_stream

SAMPLES = Path(__file__).parent.parent / "samples"
PIECES = [None, 1, 7, 64]
RESPONSES_STREAMS = ["openai-responses-stream-text.sse", "openai-responses-stream-function-call.sse",
                     "openai-responses-stream-reasoning-function-call.sse",
                     "openai-responses-stream-reasoning-summary.sse"]


def _events(frames: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of a Responses stream the gateway wrote."""
    events = []
    for block in frames.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n", 1)
        assert name.startswith("event: ") and data.startswith("data: ")
        events.append((name[len("event: "):], orjson.loads(data[len("data: "):])))
    return events


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("sample", RESPONSES_STREAMS)
def test_recorded_responses_stream_passes_through(sample: str, piece: int | None) -> None:
    body = (SAMPLES / sample).read_bytes()
    upstream = [orjson.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    translator = ResponsesPassthroughStream("public-model")
    relayed = translate_stream(translator, body, piece)
    assert [e["type"] for e in relayed] == [e["type"] for e in upstream]
    for ours, theirs in zip(relayed, upstream, strict=True):
        if "response" in theirs:
            assert ours["response"]["model"] == "public-model"
            ours["response"]["model"] = theirs["response"]["model"]
        assert ours == theirs  # nothing else changed
    usage = upstream[-1]["response"]["usage"]
    assert translator.state.usage is not None
    assert (translator.state.usage.prompt_tokens, translator.state.usage.completion_tokens) == (
        usage["input_tokens"], usage["output_tokens"])
    frames = PassthroughStream(lambda response: None).chunks([orjson.dumps(e) for e in relayed])
    assert [name for name, _ in _events(frames)] == [e["type"] for e in upstream]


def test_truncated_responses_stream_is_an_error() -> None:
    body = (SAMPLES / "openai-responses-stream-text.sse").read_bytes()
    cut = body[:body.index(b"event: response.completed")]
    with pytest.raises(UpstreamError) as caught:
        translate_stream(ResponsesPassthroughStream("m"), cut)
    assert caught.value.code == "upstream_truncated"


@pytest.mark.parametrize("sample", ["openai-responses-text.json", "openai-responses-function-call.json",
                                    "openai-responses-reasoning-function-call.json",
                                    "openai-responses-reasoning-summary.json",
                                    "openai-responses-structured-output.json"])
def test_recorded_response_object_passes_through(sample: str) -> None:
    body = (SAMPLES / sample).read_bytes()
    relayed, usage = passthrough_answer(body, "public-model")
    original, answer = orjson.loads(body), orjson.loads(relayed)
    assert answer.pop("model") == "public-model"
    original.pop("model")
    assert answer == original
    assert (usage.prompt_tokens, usage.completion_tokens) == (original["usage"]["input_tokens"],
                                                              original["usage"]["output_tokens"])


def _responses_of_chat(sample: str, piece: int | None) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    chunks = translate_stream(OpenAIStream(StreamState("gpt-4o", True)), (SAMPLES / sample).read_bytes(), piece)
    done: list[dict[str, Any]] = []
    stream = ResponsesStream(out.skeleton({"model": "gpt-4o"}, "resp_1", "gpt-4o", None), done.append)
    payloads = [orjson.dumps(c) for c in chunks]
    frames = stream.chunks(payloads[:2]) + stream.end(payloads[2:])
    return _events(frames), done[0]


@pytest.mark.parametrize("piece", PIECES)
def test_chat_text_stream_becomes_the_responses_sequence(piece: int | None) -> None:
    events, final = _responses_of_chat("openai-chat-stream-text-usage.sse", piece)
    names = [name for name, _ in events]
    assert names[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert names[-5:] == ["response.output_text.delta", "response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    assert final["output"][0]["content"][0]["text"] == text and text
    assert final["status"] == "completed" and final["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("sample", ["openai-chat-stream-tool-call.sse", "openai-chat-stream-parallel-tool-calls.sse"])
def test_chat_tool_calls_become_function_call_items(sample: str, piece: int | None) -> None:
    events, final = _responses_of_chat(sample, piece)
    calls = [item for item in final["output"] if item["type"] == "function_call"]
    assert calls and all(orjson.loads(c["arguments"]) for c in calls)
    done = [data for name, data in events if name == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == [c["arguments"] for c in calls]
    added = [data["output_index"] for name, data in events if name == "response.output_item.added"]
    assert added == list(range(len(final["output"])))


def test_reasoning_content_becomes_a_reasoning_item_with_summary_events() -> None:
    done: list[dict[str, Any]] = []
    stream = ResponsesStream(out.skeleton({}, "resp_1", "m", None), done.append)
    chunk = {"choices": [{"index": 0, "delta": {"reasoning_content": "Thinking."}}]}
    text = {"choices": [{"index": 0, "delta": {"content": "Answer."}, "finish_reason": "length"}]}
    events = _events(stream.chunks([orjson.dumps(chunk)]) + stream.end([orjson.dumps(text)]))
    names = [name for name, _ in events]
    assert names.index("response.reasoning_summary_text.done") < names.index("response.content_part.added")
    assert done[0]["output"][0]["summary"] == [{"type": "summary_text", "text": "Thinking."}]
    assert done[0]["status"] == "incomplete" and done[0]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert names[-1] == "response.incomplete"


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    stream = ResponsesStream(out.skeleton({}, "resp_1", "m", None), lambda r: None)
    events = _events(stream.chunks([]) + stream.error(UpstreamError(502, "lost", code="upstream_disconnected")))
    assert [n for n, _ in events][-2:] == ["error", "response.failed"]
    assert events[-1][1]["response"]["error"] == {"code": "upstream_disconnected", "message": "lost"}


def test_request_fields_become_chat_fields() -> None:
    chat = to_chat({
        "model": "m", "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9,
        "reasoning": {"effort": "low", "summary": "auto"}, "parallel_tool_calls": False, "user": "u1",
        "text": {"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}, "strict": True}},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "f"}, "stream": True, "metadata": {"a": "b"},
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"},
                                         {"type": "input_image", "image_url": "https://x/y.png"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"}]}, [])
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "auto"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "r", "schema": {"type": "object"}, "strict": True}}
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"},
                                                               "strict": True}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert (chat["reasoning_effort"], chat["max_completion_tokens"], chat["temperature"], chat["top_p"]) == (
        "low", 50, 0.2, 0.9)
    assert chat["stream_options"] == {"include_usage": True} and "metadata" not in chat


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "prompt": {"id": "p"}}, "prompt"),
    ({"input": "x", "frobnicate": 1}, "frobnicate"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}, "input[0].content[0]"),
    ({"input": "x", "text": {"format": {"type": "grammar"}}}, "text.format.type"),
])
def test_what_chat_cannot_express_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        to_chat({"model": "m", **body}, [])
    assert caught.value.status == 400 and caught.value.param == param


def test_event_passthrough_error_event_raises() -> None:
    with pytest.raises(UpstreamError):
        ResponsesPassthroughStream("m").feed(SSEEvent("error", b'{"type":"error","code":"x","message":"boom"}'))
