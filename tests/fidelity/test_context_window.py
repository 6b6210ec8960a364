"""Pre-flight: a prompt that certainly exceeds the model's max_sequence_length is a 400
context_length_exceeded (OpenAI's shape), or goes to the context-window fallback, without
an upstream call; a prompt that may fit is never refused."""

from __future__ import annotations

import openai
import pytest

from providers.base import Operation
from router.tokens import MAX_CHARS_PER_TOKEN, exceeds_context
from tests.harness import Gateway


def _calls(gw: Gateway, kind: str, path: str) -> int:
    return sum(1 for r in gw.sim(kind).received if path in r.path)


def test_ten_million_words_to_claude_are_refused_before_any_upstream_call(gw: Gateway) -> None:
    before = _calls(gw, "anthropic", "/messages")
    words = "hi " * 6_000_000  # 18 MB of words, 6 M tokens at least; the window is 200,000
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="claude-3-5-sonnet", messages=[{"role": "user", "content": words}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert error["type"] == "invalid_request_error" and "200000" in error["message"]
    assert _calls(gw, "anthropic", "/messages") == before


def test_a_prompt_too_long_for_the_model_goes_to_its_context_window_fallback(gw: Gateway) -> None:
    before = _calls(gw, "openai", "/chat/completions")
    long_text = "lorem ipsum dolor sit amet " * 4000  # 108,000 characters: over 1,000 tokens surely
    raw = gw.client().chat.completions.with_raw_response.create(
        model="small-window", messages=[{"role": "user", "content": long_text}])
    assert raw.headers["x-llm-router-model"] == "gemini-1.5-pro"
    assert _calls(gw, "openai", "/chat/completions") == before


def test_a_prompt_that_may_fit_is_sent() -> None:
    # Characters / MAX_CHARS_PER_TOKEN must exceed the window before anything is refused.
    text = "x" * (MAX_CHARS_PER_TOKEN * 1000)
    assert exceeds_context(Operation.CHAT, {"messages": [{"role": "user", "content": text}]}, 1000) == 0
    varied = "ab" * (MAX_CHARS_PER_TOKEN * 1000)
    assert exceeds_context(Operation.CHAT, {"messages": [{"role": "user", "content": varied}]}, 1000) > 1000


def test_runs_of_one_character_count_as_one() -> None:
    # 80 spaces can be one token: a long run must not make a prompt look longer than it is.
    spaces = " " * (MAX_CHARS_PER_TOKEN * 5000)
    assert exceeds_context(Operation.CHAT, {"messages": [{"role": "user", "content": spaces}]}, 1000) == 0


def test_completions_count_token_ids_exactly_and_each_prompt_of_a_batch_alone() -> None:
    assert exceeds_context(Operation.COMPLETIONS, {"prompt": list(range(1001))}, 1000) == 1001
    batch = ["ab" * (MAX_CHARS_PER_TOKEN * 300)] * 5  # each 600 tokens at least: fits a 1000 window
    assert exceeds_context(Operation.COMPLETIONS, {"prompt": batch}, 1000) == 0
