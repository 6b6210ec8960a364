"""Fallbacks across protocols: one whose translator cannot take the request is skipped
(logged, counted); when none can serve, the client gets the original upstream error."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from router import metrics
from tests.fidelity.conftest import azure_down
from tests.harness import Gateway


def _skipped() -> float:
    return float(metrics.FALLBACKS_SKIPPED.labels("gpt-4o", "claude-3-5-sonnet")._value.get())


def _claude_calls(gw: Gateway) -> int:
    return sum(1 for r in gw.sim("anthropic").received if r.path.endswith("/messages"))


def test_n_2_during_an_azure_outage_gets_the_upstream_503_not_a_400(gw: Gateway) -> None:
    azure_down(gw)
    skipped, claude = _skipped(), _claude_calls(gw)
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(model="gpt-4o", n=2, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503
    error: Any = caught.value.body
    assert error["param"] is None and error["type"] != "invalid_request_error"
    assert _skipped() == skipped + 1
    assert _claude_calls(gw) == claude  # the fallback was never called


def test_json_object_during_an_azure_outage_is_never_blamed_on_the_client(gw: Gateway) -> None:
    azure_down(gw)
    try:
        raw = gw.client().chat.completions.with_raw_response.create(
            model="gpt-4o", response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Answer in JSON"}])
        assert raw.headers["x-llm-router-model"] == "claude-3-5-sonnet"  # Claude took it
    except openai.APIStatusError as caught:
        assert caught.status_code == 503


def test_the_requested_model_that_cannot_take_a_request_still_names_the_parameter(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="claude-3-5-sonnet", n=2,
                                            messages=[{"role": "user", "content": "hi"}])
    assert caught.value.param == "n"
