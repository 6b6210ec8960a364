"""Gemini's thinking on the recorded samples: thought summaries as reasoning_content, thought
signatures and function-call ids kept for the next turn and sent back unchanged, at every
split; and the request side of reasoning_effort, penalties and JSON Schema."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers.base import CarriedState, StreamState, UpstreamError
from providers.gemini import chat_to_gemini
from providers.gemini_reasoning import DUMMY_SIGNATURE
from providers.gemini_stream import GeminiStreamTranslator, response_to_openai
from tests.conftest import SAMPLES
from tests.streams import translate_stream

STREAMS = [
    "gemini-stream-function-call-thought-signature.sse",
    "gemini-stream-function-call-id.sse",
    "gemini-stream-json-text-signature-last-part.sse",
    "gemini-stream-thought-summaries.sse",
]
USER = {"role": "user", "content": "Hi"}


def stream(sample: str, piece: int | None) -> tuple[list[Any], CarriedState]:
    carried = CarriedState()
    state = StreamState(public_model="gemini", include_usage=True, id="chatcmpl-x", created=7)
    translator = GeminiStreamTranslator(state, carried)
    return translate_stream(translator, (SAMPLES / sample).read_bytes(), piece), carried


def recorded_parts(sample: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for line in (SAMPLES / sample).read_text().splitlines():
        if line.startswith("data:"):
            for candidate in orjson.loads(line[5:]).get("candidates") or []:
                parts.extend(candidate.get("content", {}).get("parts") or [])
    return parts


def deltas(chunks: list[Any], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


def tool_calls(chunks: list[Any]) -> list[Any]:
    return [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or []]


@pytest.mark.parametrize("sample", STREAMS)
@pytest.mark.parametrize("piece", [1, 7, 64])
def test_streams_split_anywhere_translate_identically(sample: str, piece: int) -> None:
    whole, carried_whole = stream(sample, None)
    pieces, carried_pieces = stream(sample, piece)
    # tool-call ids are minted per translation: compare all but them
    for chunks in (whole, pieces):
        for call in tool_calls(chunks):
            call["id"] = "call_x"
    assert pieces == whole
    assert [normalised(s) for s in carried_pieces.seen.values()] == [
        normalised(s) for s in carried_whole.seen.values()]


def normalised(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "calls": list(state["calls"].values())}


def test_thought_summaries_stream_as_reasoning_content_with_their_token_count() -> None:
    chunks, _ = stream("gemini-stream-thought-summaries.sse", 7)
    parts = recorded_parts("gemini-stream-thought-summaries.sse")
    assert deltas(chunks, "reasoning_content") == "".join(p["text"] for p in parts if p.get("thought"))
    assert deltas(chunks, "content") == "".join(p["text"] for p in parts if not p.get("thought"))
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


@pytest.mark.parametrize("sample", ["gemini-stream-function-call-thought-signature.sse",
                                    "gemini-stream-function-call-id.sse"])
def test_function_call_signature_and_id_go_back_unchanged(sample: str) -> None:
    chunks, carried = stream(sample, 1)
    [call] = tool_calls(chunks)
    [recorded] = [p for p in recorded_parts(sample) if "functionCall" in p]
    echo = {"role": "assistant", "content": None, "tool_calls": [call]}
    follow = [USER, echo, {"role": "tool", "tool_call_id": call["id"], "content": '{"ok": true}'}]
    request = chat_to_gemini({"messages": follow}, {}, "gemini-3-pro-preview", dict(carried.seen))
    [sent] = [p for p in request["contents"][1]["parts"] if "functionCall" in p]
    assert sent["thoughtSignature"] == recorded["thoughtSignature"]
    assert sent["functionCall"].get("id") == recorded["functionCall"].get("id")
    [response] = request["contents"][2]["parts"]
    assert response["functionResponse"].get("id") == recorded["functionCall"].get("id")


def test_parallel_calls_keep_the_one_signature_on_the_first_call() -> None:
    raw = orjson.loads((SAMPLES / "gemini-parallel-function-calls.json").read_bytes())
    carried = CarriedState()
    response, _ = response_to_openai(raw, "gemini", "chatcmpl-x", 1, carried)
    calls = response["choices"][0]["message"]["tool_calls"]
    follow = [USER, {"role": "assistant", "tool_calls": calls}]
    follow += [{"role": "tool", "tool_call_id": c["id"], "content": "1"} for c in calls]
    request = chat_to_gemini({"messages": follow}, {}, "gemini-3-flash-preview", dict(carried.seen))
    sent = request["contents"][1]["parts"]
    recorded = raw["candidates"][0]["content"]["parts"]
    assert [p.get("thoughtSignature") for p in sent] == [p.get("thoughtSignature") for p in recorded]


def test_text_signature_goes_back_on_the_text() -> None:
    raw = orjson.loads((SAMPLES / "gemini-thought-summaries.json").read_bytes())
    carried = CarriedState()
    response, usage = response_to_openai(raw, "gemini", "chatcmpl-x", 1, carried)
    message = response["choices"][0]["message"]
    assert message["reasoning_content"]
    assert usage is not None and usage.reasoning_tokens == raw["usageMetadata"]["thoughtsTokenCount"]
    follow = [USER, {"role": "assistant", "content": message["content"]}, USER]
    request = chat_to_gemini({"messages": follow}, {}, "gemini-3-pro-preview", dict(carried.seen))
    signed = [p for p in raw["candidates"][0]["content"]["parts"] if "thoughtSignature" in p]
    assert request["contents"][1]["parts"][-1]["thoughtSignature"] == signed[0]["thoughtSignature"]


def test_state_gone_on_gemini_3_gets_the_documented_dummy_signature() -> None:
    echo = {"role": "assistant", "tool_calls": [{"id": "call_gone", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}]}
    follow = [USER, echo, {"role": "tool", "tool_call_id": "call_gone", "content": "1"}]
    sent = chat_to_gemini({"messages": follow}, {}, "gemini-3-pro-preview", {})["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == DUMMY_SIGNATURE
    older = chat_to_gemini({"messages": follow}, {}, "gemini-2.5-flash", {})["contents"][1]["parts"][0]
    assert "thoughtSignature" not in older


@pytest.mark.parametrize(("model", "effort", "config"), [
    ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
    ("gemini-2.5-flash", "low", {"thinkingBudget": 2048, "includeThoughts": True}),
    ("gemini-2.5-pro", "high", {"thinkingBudget": 32768, "includeThoughts": True}),
    ("gemini-2.5-flash-lite", "minimal", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("gemini-3-pro-preview", "medium", {"thinkingLevel": "high", "includeThoughts": True}),
    ("gemini-3-pro-preview", "none", {"thinkingLevel": "low", "includeThoughts": False}),
    ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal", "includeThoughts": True}),
])
def test_reasoning_effort_becomes_thinking_config(model: str, effort: str, config: dict[str, Any]) -> None:
    request = chat_to_gemini({"messages": [USER], "reasoning_effort": effort}, {}, model)
    assert request["generationConfig"]["thinkingConfig"] == config


def test_models_that_cannot_do_it_say_which_parameter() -> None:
    for body, model, param in [({"reasoning_effort": "none"}, "gemini-2.5-pro", "reasoning_effort"),
                               ({"reasoning_effort": "low"}, "gemini-2.0-flash", "reasoning_effort"),
                               ({"presence_penalty": 0.5}, "gemini-2.5-flash", "presence_penalty"),
                               ({"frequency_penalty": 1}, "gemini-3-pro-preview", "frequency_penalty")]:
        with pytest.raises(UpstreamError) as caught:
            chat_to_gemini({"messages": [USER], **body}, {}, model)
        assert (caught.value.status, caught.value.param) == (400, param)
    older = chat_to_gemini({"messages": [USER], "presence_penalty": 0.5}, {}, "gemini-2.0-flash")
    assert older["generationConfig"]["presencePenalty"] == 0.5


def test_json_schema_goes_unchanged_to_models_that_take_json_schema() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}},
              "required": ["tags"], "additionalProperties": False}
    body = {"messages": [USER], "response_format": {"type": "json_schema",
                                                    "json_schema": {"name": "T", "strict": True, "schema": schema}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}}]}
    request = chat_to_gemini(body, {}, "gemini-2.5-flash")
    assert request["generationConfig"]["responseJsonSchema"] == schema
    assert request["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == schema
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}
    with pytest.raises(UpstreamError):  # a free-form map has no form in the old Schema subset
        chat_to_gemini(body, {}, "gemini-2.0-flash")
