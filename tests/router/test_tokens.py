"""Token estimates: reservations before a call, usage where an upstream gave none."""

from __future__ import annotations

from providers.base import Operation
from router.tokens import estimate_completion_tokens, estimate_prompt_tokens, requested_output_tokens


def test_prompt_estimates_count_text_images_and_tools() -> None:
    text = {"messages": [{"role": "user", "content": "x" * 400}]}
    assert estimate_prompt_tokens(Operation.CHAT, text) == 100 + 4
    image = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:..."}}]}]}
    assert estimate_prompt_tokens(Operation.CHAT, image) == 85 + 4
    assert estimate_prompt_tokens(Operation.EMBEDDINGS, {"input": ["abcd", "efgh"]}) == 2
    assert estimate_prompt_tokens(Operation.COMPLETIONS, {"prompt": [1, 2, 3]}) == 3


def test_completion_estimate_from_an_answer_without_usage() -> None:
    chat = b'{"choices": [{"message": {"role": "assistant", "content": "' + b"y" * 40 + b'"}}]}'
    assert estimate_completion_tokens(chat) == 10
    assert estimate_completion_tokens(b'{"choices": [{"text": "abcdefgh"}]}') == 2
    assert estimate_completion_tokens(b"not json") == 0


def test_requested_output_prefers_max_completion_tokens() -> None:
    assert requested_output_tokens({"max_completion_tokens": 7, "max_tokens": 9}, 100) == 7
    assert requested_output_tokens({"max_tokens": 9}, 100) == 9
    assert requested_output_tokens({}, 100) == 100
