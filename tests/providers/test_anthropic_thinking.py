"""Claude's thinking on the recorded samples: reasoning_content, signatures kept for the next
turn, redacted thinking, at every split; and the request side of reasoning_effort."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers.anthropic import to_anthropic_request
from providers.anthropic_stream import MAX_KEPT_CHARS, AnthropicStreamTranslator, from_anthropic_response
from providers.base import ApiRequest, CarriedState, Operation, SSEEvent, StreamState, UpstreamError, turn_key
from tests.conftest import SAMPLES
from tests.streams import translate_stream

THINKING_STREAMS = [
    "anthropic-stream-thinking-text.sse",
    "anthropic-stream-thinking-text-sonnet-4.sse",
    "anthropic-stream-redacted-thinking.sse",
    "anthropic-stream-thinking-server-tool-use.sse",
]


def stream(sample: str, piece: int | None) -> tuple[list[Any], CarriedState]:
    carried = CarriedState()
    state = StreamState(public_model="claude", include_usage=True, id="chatcmpl-x", created=7)
    chunks = translate_stream(AnthropicStreamTranslator(state, None, carried), (SAMPLES / sample).read_bytes(), piece)
    return chunks, carried


def deltas(chunks: list[Any], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


def recorded_blocks(sample: str) -> list[dict[str, Any]]:
    """The thinking blocks as the recording built them (start, then deltas), for comparison."""
    blocks: dict[int, dict[str, Any]] = {}
    for line in (SAMPLES / sample).read_text().splitlines():
        if not line.startswith("data:"):
            continue
        data = orjson.loads(line[5:])
        if data["type"] == "content_block_start" and data["content_block"]["type"].endswith("thinking"):
            blocks[data["index"]] = dict(data["content_block"])
        elif data["type"] == "content_block_delta" and data["index"] in blocks:
            delta = data["delta"]
            for name in ("thinking", "signature"):
                if delta["type"] == f"{name}_delta":
                    blocks[data["index"]][name] += delta[name]
    return [blocks[i] for i in sorted(blocks)]


@pytest.mark.parametrize("sample", THINKING_STREAMS)
@pytest.mark.parametrize("piece", [1, 7, 64])
def test_thinking_streams_split_anywhere_translate_identically(sample: str, piece: int) -> None:
    whole, carried_whole = stream(sample, None)
    pieces, carried_pieces = stream(sample, piece)
    assert pieces == whole
    assert carried_pieces.seen == carried_whole.seen


@pytest.mark.parametrize("sample", THINKING_STREAMS)
def test_thinking_blocks_are_kept_whole_for_the_next_turn(sample: str) -> None:
    chunks, carried = stream(sample, 7)
    [state] = carried.seen.values()
    assert [entry["block"] for entry in state["thinking"]] == recorded_blocks(sample)
    key = turn_key({"content": deltas(chunks, "content")})
    assert key in carried.seen


def test_thinking_text_streams_as_reasoning_content_and_counts_as_reasoning_tokens() -> None:
    chunks, _ = stream("anthropic-stream-thinking-text.sse", 1)
    reasoning = deltas(chunks, "reasoning_content")
    assert reasoning == recorded_blocks("anthropic-stream-thinking-text.sse")[0]["thinking"]
    usage = chunks[-1]["usage"]
    assert 0 < usage["completion_tokens_details"]["reasoning_tokens"] <= usage["completion_tokens"]
    assert "reasoning_content" not in "".join(str(c["choices"][0]["delta"].get("content")) for c in chunks[1:2])


def test_redacted_thinking_gives_no_reasoning_text_but_is_kept() -> None:
    chunks, carried = stream("anthropic-stream-redacted-thinking.sse", 64)
    assert deltas(chunks, "reasoning_content") == ""
    [state] = carried.seen.values()
    assert [e["block"]["type"] for e in state["thinking"]] == ["redacted_thinking", "redacted_thinking"]


def request(body: dict[str, Any], carried: CarriedState | None = None, cap: int = 0) -> ApiRequest:
    return ApiRequest(Operation.CHAT, body, "claude", max_output_length=cap, carried=carried or CarriedState())


@pytest.mark.parametrize("sample", ["anthropic-thinking.json", "anthropic-thinking-tool-use.json",
                                    "anthropic-redacted-thinking.json"])
def test_plain_answers_give_reasoning_content_and_their_blocks_back_byte_for_byte(sample: str) -> None:
    raw = (SAMPLES / sample).read_bytes()
    carried = CarriedState()
    response, _ = from_anthropic_response(request({"messages": []}, carried), raw)
    message = response["choices"][0]["message"]
    upstream = orjson.loads(raw)["content"]
    thinking = [b for b in upstream if b["type"] == "thinking"]
    assert message.get("reasoning_content", "") == "".join(b["thinking"] for b in thinking)
    # The client sends back only content and tool_calls; the next request carries the blocks.
    echo = {"role": "assistant", "content": message["content"], "tool_calls": message.get("tool_calls")}
    if not echo["tool_calls"]:
        del echo["tool_calls"]
    follow = [{"role": "user", "content": "Hi"}, echo]
    if message.get("tool_calls"):
        follow.append({"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "42"})
    else:
        follow.append({"role": "user", "content": "more"})
    given = CarriedState(given=dict(carried.seen))
    out = to_anthropic_request(request({"messages": follow, "reasoning_effort": "low"}, given),
                               "claude-sonnet-4-20250514")
    sent = out["messages"][1]["content"]
    kept = [b for b in sent if b["type"] in ("thinking", "redacted_thinking")]
    original = [b for b in upstream if b["type"] in ("thinking", "redacted_thinking")]
    assert orjson.dumps(kept) == orjson.dumps(original)
    assert sent[0]["type"] in ("thinking", "redacted_thinking")


def test_reasoning_effort_becomes_a_budget_and_max_tokens_grows_to_fit() -> None:
    out = to_anthropic_request(request({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 500,
                                        "reasoning_effort": "medium"}), "claude-sonnet-4-5-20250929")
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert out["max_tokens"] == 8692


def test_adaptive_models_get_adaptive_thinking_and_an_effort() -> None:
    out = to_anthropic_request(request({"messages": [{"role": "user", "content": "Hi"}],
                                        "reasoning_effort": "high"}), "claude-opus-4-6")
    assert out["thinking"] == {"type": "adaptive"}
    assert out["output_config"] == {"effort": "high"}


def test_none_leaves_thinking_off_and_old_models_refuse_effort() -> None:
    out = to_anthropic_request(request({"messages": [{"role": "user", "content": "Hi"}],
                                        "reasoning_effort": "none"}), "claude-sonnet-4-5")
    assert "thinking" not in out
    with pytest.raises(UpstreamError) as caught:
        to_anthropic_request(request({"messages": [{"role": "user", "content": "Hi"}],
                                      "reasoning_effort": "low"}), "claude-3-5-haiku-20241022")
    assert caught.value.param == "reasoning_effort"


@pytest.mark.parametrize(("extra", "param"), [({"temperature": 0.2}, "temperature"), ({"top_k": 5}, "top_k"),
                                               ({"top_p": 0.5}, "top_p")])
def test_thinking_refuses_sampling_by_name(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        to_anthropic_request(request({"messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": "low",
                                      **extra}), "claude-sonnet-4-20250514")
    assert (caught.value.status, caught.value.param) == (400, param)


def test_claude_4_5_refuses_temperature_with_top_p() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.5, "top_p": 0.9}
    with pytest.raises(UpstreamError) as caught:
        to_anthropic_request(request(body), "claude-haiku-4-5")
    assert caught.value.param == "top_p"
    assert to_anthropic_request(request(body), "claude-sonnet-4-20250514")["top_p"] == 0.9


def test_a_tool_turn_whose_thinking_is_gone_is_sent_with_thinking_off() -> None:
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "tool_calls": [{"id": "toolu_gone", "type": "function",
                                                      "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_gone", "content": "1"}]
    out = to_anthropic_request(request({"messages": messages, "reasoning_effort": "high"}), "claude-sonnet-4-5")
    assert "thinking" not in out


def test_native_structured_output_on_models_that_have_it() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}
    body = {"messages": [{"role": "user", "content": "Hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "A", "strict": True, "schema": schema}}}
    native = to_anthropic_request(request(body), "claude-sonnet-4-5-20250929")
    assert native["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "tools" not in native
    emulated = to_anthropic_request(request(body), "claude-sonnet-4-20250514")
    assert emulated["tool_choice"] == {"type": "tool", "name": "A"}


def test_json_object_is_a_free_form_answer_tool() -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}
    out = to_anthropic_request(request(body), "claude-sonnet-4-5")
    assert out["tools"][0]["input_schema"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "tool", "name": "json_object"}


def test_a_huge_thinking_turn_is_streamed_but_not_kept() -> None:
    carried = CarriedState()
    translator = AnthropicStreamTranslator(StreamState(public_model="m", include_usage=False), None, carried)
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "x" * 65536}}
          for _ in range(MAX_KEPT_CHARS // 65536 + 2)],
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "thinking", "thinking": "more"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}},
    ]
    out = [c for e in events for c in translator.feed(SSEEvent(e["type"], orjson.dumps(e)))]
    assert sum(len(orjson.loads(c)["choices"][0]["delta"].get("reasoning_content") or "") for c in out) > MAX_KEPT_CHARS
    assert carried.seen == {}
