"""The Anthropic simulator refuses what current Claude models refuse (providers/simulators/anthropic_modern.py)."""

from __future__ import annotations

from typing import Any

import pytest

from providers.simulators.anthropic import answer_message, stream_events
from providers.simulators.anthropic_modern import ModernRejected, signature, validate_modern

USER = {"role": "user", "content": "What is the weather in Paris?"}
TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 4000, "messages": [USER], **extra}


@pytest.mark.parametrize(("extra", "model", "words"), [
    ({"temperature": 0.5, "top_p": 0.9}, "claude-sonnet-4-5-20250929", "cannot both"),
    ({"temperature": 0.5, "top_p": 0.9}, "claude-opus-4-1", "cannot both"),
    ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "claude-sonnet-4-5", "1024"),
    ({"thinking": {"type": "enabled", "budget_tokens": 4000}}, "claude-sonnet-4-5", "max_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "temperature": 0.3}, "claude-sonnet-4", "temperature"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "tools": [TOOL],
      "tool_choice": {"type": "any"}}, "claude-sonnet-4", "forces tool use"),
    ({"thinking": {"type": "adaptive"}}, "claude-sonnet-4-5", "adaptive"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}, "claude-sonnet-4-5",
     "additionalProperties"),
    ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object",
                                                                     "additionalProperties": False}}}},
     "claude-sonnet-4-20250514", "not supported"),
    ({"messages": [USER, {"role": "assistant", "content": "{"}]}, "claude-opus-4-6", "Prefilling"),
])
def test_refused_as_documented(extra: dict[str, Any], model: str, words: str) -> None:
    with pytest.raises(ModernRejected) as caught:
        validate_modern(body(**extra), model, vertex=False)
    assert words in str(caught.value)


def test_older_models_take_both_samplers_and_vertex_has_structured_outputs_from_4_6() -> None:
    validate_modern(body(temperature=0.5, top_p=0.9), "claude-sonnet-4-20250514", vertex=False)
    schema = {"type": "object", "additionalProperties": False}
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": schema}}}
    with pytest.raises(ModernRejected):
        validate_modern(body(**fmt), "claude-sonnet-4-5@20250929", vertex=True)
    validate_modern(body(**fmt), "claude-sonnet-4-6", vertex=True)


def test_thinking_answers_carry_a_signature_that_must_come_back_unchanged() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    first = answer_message(body(thinking=thinking, tools=[TOOL]), "claude-sonnet-4-5")
    assert first["content"][0]["type"] == "thinking" and first["content"][-1]["type"] == "tool_use"
    events = [e for _, e in stream_events(first)]
    assert [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"][-1] != "signature_delta"
    assert any(e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta" for e in events)
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["content"][-1]["id"],
                                           "content": "sunny"}]}
    follow = body(thinking=thinking, tools=[TOOL], messages=[USER, {"role": "assistant", "content": first["content"]},
                                                             result])
    validate_modern(follow, "claude-sonnet-4-5", vertex=False)
    without = [b for b in first["content"] if b["type"] != "thinking"]
    with pytest.raises(ModernRejected, match="Expected `thinking`"):
        validate_modern({**follow, "messages": [USER, {"role": "assistant", "content": without}, result]},
                        "claude-sonnet-4-5", vertex=False)
    changed = [{**first["content"][0], "thinking": "edited"}, *without]
    with pytest.raises(ModernRejected, match="Invalid `signature`"):
        validate_modern({**follow, "messages": [USER, {"role": "assistant", "content": changed}, result]},
                        "claude-sonnet-4-5", vertex=False)
    assert first["content"][0]["signature"] == signature(first["content"][0]["thinking"])
