"""Every number a client sends is range-checked where it enters (router/http/validate.py): a clean
400 naming the parameter, before any limit is touched or any upstream is called. Asking for
more output than the model's `max_output_length` is a 400, as OpenAI answers it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.harness import KEY_A, Gateway, table_dict
from tests.security.http import call

UINT64_MAX = 2**64 - 1
LLAMA = "Llama-3.1-70B-Instruct"  # max_output_length 8192 in the test table


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    # A TPM limit, so that a request reserves tokens: what it asks for must never reach the reservation unchecked.
    table = table_dict()
    table["keys"][0]["limits"] = {"tpm": 1_000_000}
    with Gateway(table) as gateway:
        yield gateway


def post(gw: Gateway, body: dict[str, Any], path: str = "/v2/chat/completions") -> tuple[int, dict[str, Any]]:
    answer = call(gw, "POST", path, KEY_A, data=orjson.dumps(body), headers={"Content-Type": "application/json"})
    return answer.status, answer.json()


def hello(**extra: Any) -> dict[str, Any]:
    return {"model": LLAMA, "messages": [{"role": "user", "content": "hello"}], **extra}


OUT_OF_RANGE: dict[str, tuple[dict[str, Any], str, str]] = {
    "max_tokens 2^64-1": (hello(max_tokens=UINT64_MAX), "max_tokens", "/v2/chat/completions"),
    "max_completion_tokens 2^64-1": (hello(max_completion_tokens=UINT64_MAX), "max_completion_tokens",
                                     "/v2/chat/completions"),
    "max_tokens 0": (hello(max_tokens=0), "max_tokens", "/v2/chat/completions"),
    "max_tokens negative": (hello(max_tokens=-5), "max_tokens", "/v2/chat/completions"),
    "n 0": (hello(n=0), "n", "/v2/chat/completions"),
    "n 10^6": (hello(n=10**6), "n", "/v2/chat/completions"),
    "temperature 3": (hello(temperature=3), "temperature", "/v2/chat/completions"),
    "top_p -0.1": (hello(top_p=-0.1), "top_p", "/v2/chat/completions"),
    "presence_penalty 1e300": (hello(presence_penalty=1e300), "presence_penalty", "/v2/chat/completions"),
    "frequency_penalty -3": (hello(frequency_penalty=-3), "frequency_penalty", "/v2/chat/completions"),
    "top_logprobs 21": (hello(logprobs=True, top_logprobs=21), "top_logprobs", "/v2/chat/completions"),
    "seed 2^63": (hello(seed=2**63), "seed", "/v2/chat/completions"),
    "logit_bias value 1e9": (hello(logit_bias={"50256": 10**9}), "logit_bias.50256", "/v2/chat/completions"),
    "logit_bias key 2^64": (hello(logit_bias={str(UINT64_MAX): 1}), "logit_bias", "/v2/chat/completions"),
    "completions max_tokens 2^64-1": ({"model": LLAMA, "prompt": "a", "max_tokens": UINT64_MAX}, "max_tokens",
                                      "/v2/completions"),
    "completions logprobs 6": ({"model": LLAMA, "prompt": "a", "logprobs": 6}, "logprobs", "/v2/completions"),
    "a token id of 2^40": ({"model": LLAMA, "prompt": [1, 2, 2**40]}, "prompt", "/v2/completions"),
    "embedding dimensions 2^64": ({"model": "jina-embeddings-v2-base-de", "input": "a", "dimensions": UINT64_MAX},
                                  "dimensions", "/v2/embeddings"),
    "embedding token id -1": ({"model": "jina-embeddings-v2-base-de", "input": [-1]}, "input", "/v2/embeddings"),
}


@pytest.mark.parametrize("name", list(OUT_OF_RANGE))
def test_a_number_out_of_range_is_a_400_naming_it_and_reaches_no_upstream(gw: Gateway, name: str) -> None:
    body, param, path = OUT_OF_RANGE[name]
    received = len(gw.sim("openai-compatible").received)
    status, answer = post(gw, body, path)
    assert status == 400, answer
    assert answer["error"]["param"] == param and answer["error"]["type"] == "invalid_request_error"
    assert len(gw.sim("openai-compatible").received) == received


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("model", [LLAMA, "claude-3-5-sonnet", "gemini-1.5-pro", "gpt-4o-mini"])
def test_more_output_than_the_model_gives_is_a_400_as_openai_answers_it(gw: Gateway, name: str,
                                                                        model: str) -> None:
    limit = gw.table.models[model].meta_data.max_output_length  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as refused:
        gw.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                            **{name: limit + 1})  # type: ignore[call-overload]
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == name and error["code"] == "invalid_value"
    assert f"at most {limit} completion tokens" in error["message"]


def test_the_models_own_limit_is_served(gw: Gateway) -> None:
    answer = gw.client().chat.completions.create(model=LLAMA, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=8192)
    assert answer.choices[0].message.content
    assert gw.sim("openai-compatible").received[-1].json()["max_tokens"] == 8192


def test_a_model_without_a_limit_is_bounded_all_the_same(gw: Gateway) -> None:
    # whisper and the embedding models have no max_output_length; a chat model without one is bounded at 10M.
    table = table_dict()
    del table["models"][LLAMA]["meta_data"]["max_output_length"]
    with Gateway(table) as unbounded:
        status, answer = post(unbounded, hello(max_tokens=UINT64_MAX))
        assert status == 400 and answer["error"]["param"] == "max_tokens"
        status, answer = post(unbounded, hello(max_tokens=100_000))
        assert status == 200, answer
