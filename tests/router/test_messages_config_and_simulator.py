"""The Messages API's new setting (a provider's `anthropic_beta` allowlist, validated at load)
and what the Anthropic simulator does as the real API does: beta headers, token counting,
thinking blocks whose signature it checks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from providers.simulators.anthropic import create_app
from providers.simulators.anthropic_features import signature
from router.config.schema import ConfigError, parse
from tests.harness import table_dict

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, "routes.test.yaml")
    return caught.value.errors


def test_anthropic_beta_allowlist_is_read_and_checked() -> None:
    table = table_dict()
    table["providers"]["anthropic"]["anthropic_beta"] = ["prompt-caching-2024-07-31", "*"]
    assert parse(table, "routes.test.yaml").providers["anthropic"].settings.anthropic_beta == (
        "prompt-caching-2024-07-31", "*")
    table["providers"]["anthropic"]["anthropic_beta"] = ["Not A Beta!"]
    table["providers"]["openai"]["anthropic_beta"] = ["prompt-caching-2024-07-31"]
    errors = "\n".join(errors_of(table))
    assert "providers.anthropic.anthropic_beta" in errors and "Not A Beta!" in errors
    assert "providers.openai.anthropic_beta" in errors and "only for providers that speak the Anthropic API" in errors


async def post(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with TestClient(TestServer(create_app())) as client:
        response = await client.post(path, data=orjson.dumps(body), headers={**HEADERS, **(headers or {})})
        return response.status, await response.json()


ASK = {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": [{"role": "user", "content": "Hi there"}]}


async def test_unknown_beta_features_are_refused_known_ones_accepted() -> None:
    status, body = await post("/v1/messages", ASK, {"anthropic-beta": "prompt-caching-2024-07-31,no-such-beta"})
    assert status == 400 and "no-such-beta" in body["error"]["message"]
    status, _ = await post("/v1/messages", ASK, {"anthropic-beta": "prompt-caching-2024-07-31"})
    assert status == 200


async def test_count_tokens() -> None:
    counted = {k: v for k, v in ASK.items() if k != "max_tokens"}
    status, body = await post("/v1/messages/count_tokens", counted)
    assert status == 200 and body == {"input_tokens": 2}
    status, body = await post("/v1/messages/count_tokens", ASK)
    assert status == 400 and "max_tokens" in body["error"]["message"]


async def test_thinking_is_signed_and_the_signature_checked() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    status, answer = await post("/v1/messages", {**ASK, "thinking": thinking})
    block = answer["content"][0]
    assert status == 200 and block["type"] == "thinking" and block["signature"] == signature(block["thinking"])
    history = [*ASK["messages"], {"role": "assistant", "content": answer["content"]},  # type: ignore[list-item]
               {"role": "user", "content": "And now?"}]
    status, _ = await post("/v1/messages", {**ASK, "thinking": thinking, "messages": history})
    assert status == 200
    history[1]["content"][0] = {**block, "thinking": block["thinking"] + " "}
    status, body = await post("/v1/messages", {**ASK, "thinking": thinking, "messages": history})
    assert status == 400 and "signature" in body["error"]["message"]
    status, body = await post("/v1/messages", {**ASK, "thinking": {"type": "enabled", "budget_tokens": 10}})
    assert status == 400 and "budget_tokens" in body["error"]["message"]
