"""The checks every translator applies to what an upstream sends (providers/untrusted.py)."""

from __future__ import annotations

from typing import Any

import pytest

from providers.base import Usage, retry_after_seconds
from providers.untrusted import (
    MAX_ERROR_MESSAGE,
    OutOfRange,
    error_message,
    index,
    logprob,
    plain_token,
    usage_or_missing,
)

PROMPT, COMPLETION = ("prompt_tokens",), ("completion_tokens",)


@pytest.mark.parametrize("count", [-1, -1_000_000, 10**12, 2**64, 1.5, "12", True, None, [], float("inf")])
def test_a_count_out_of_range_is_usage_missing(count: Any) -> None:
    raw = {"prompt_tokens": 3, "completion_tokens": count} if count is not None else {"completion_tokens": 2}
    assert usage_or_missing(raw, PROMPT, COMPLETION, "prompt_tokens") == Usage(estimated=True)
    assert usage_or_missing({"prompt_tokens": count, "completion_tokens": 2}, PROMPT, COMPLETION,
                            "prompt_tokens") == Usage(estimated=True)


def test_sane_counts_pass_and_whole_decimals_count() -> None:
    assert usage_or_missing({"prompt_tokens": 3.0, "completion_tokens": 0}, PROMPT, COMPLETION,
                            "prompt_tokens") == Usage(3, 0)
    assert usage_or_missing({"a": 1, "b": 2, "c": 4}, ("a", "b"), ("c", "d"), "a") == Usage(3, 4)


@pytest.mark.parametrize("value", [-1, 5000, 1e15, "0", True])
def test_a_position_out_of_range_is_refused(value: Any) -> None:
    with pytest.raises(OutOfRange):
        index(value, 0)
    assert index(None, 7) == 7 and index(3, 0) == 3


@pytest.mark.parametrize("value", [0.5, float("nan"), float("inf"), "-1", None])
def test_a_logprob_out_of_range_is_refused(value: Any) -> None:
    with pytest.raises(OutOfRange):
        logprob(value)
    assert logprob(-0.25) == -0.25 and logprob(0) == 0.0


SECRETS = ["sk-proj-abcdefghijklmnop1234", "AIzaSyA1234567890abcdefghijklmnopqrs", "ya29.a0AfH6SMBx-token",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "0123456789abcdef0123456789abcdef01"]


@pytest.mark.parametrize("secret", SECRETS)
def test_credentials_in_an_error_message_are_blanked(secret: str) -> None:
    for text in (f"invalid key {secret} given", f"Authorization: Bearer {secret}", f"url?api_key={secret}&x=1",
                 f'{{"token": "{secret}"}}'):
        message = error_message(text, 401)
        assert secret not in message and "[REDACTED]" in message, message


def test_an_error_message_keeps_the_providers_words_bounded() -> None:
    assert error_message("model 'gpt-4o-2024-08-06' does not exist", 404) == \
        "model 'gpt-4o-2024-08-06' does not exist"
    assert len(error_message("word " * 1000, 400)) <= MAX_ERROR_MESSAGE + 3
    assert error_message("line\x00one\x1b[31m", 400) == "line one [31m"


@pytest.mark.parametrize("text", ["<html><body>oops</body></html>", "<!DOCTYPE html>", "", "   ", None, 42,
                                  "Traceback (most recent call last):\n  File x"])
def test_markup_tracebacks_and_non_text_become_the_generic_message(text: Any) -> None:
    assert error_message(text, 502) == "The upstream provider answered HTTP 502."


def test_codes_are_plain_tokens_only() -> None:
    assert plain_token("context_length_exceeded") == "context_length_exceeded" and plain_token(429) == "429"
    for value in ("two words", "x" * 65, "sk-live-0123456789abcdefABCDEF", True, {"a": 1}, "<b>"):
        assert plain_token(value) is None


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "1e300", "3601", "soon"])
def test_a_retry_after_out_of_range_is_none(value: str) -> None:
    assert retry_after_seconds({"retry-after": value}) is None
    assert retry_after_seconds({"retry-after-ms": value}) is None or value == "3601"
    assert retry_after_seconds({"retry-after": "2.5"}) == 2.5 and retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
