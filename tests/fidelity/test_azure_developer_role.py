"""Azure: `developer` messages go as `system` where the configured api-version predates the
developer role (2024-12-01-preview), unchanged where it takes it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from providers.base import ApiRequest, Operation
from providers.openai import ADAPTERS
from providers.settings import ProviderSettings
from tests.harness import Gateway

MESSAGES = [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": "hi"}]


def test_developer_messages_reach_azure_2024_10_21_as_system(gw: Gateway) -> None:
    since = len(gw.sim("azure").received)
    answer = gw.client().chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    sent = [r.json() for r in gw.sim("azure").received[since:] if "/openai/deployments/" in r.path]
    assert [m["role"] for m in sent[-1]["messages"]] == ["system", "user"]


def _sent_roles(kind: str, api_version: str | None) -> list[Any]:
    settings = ProviderSettings(name="p", kind=kind, base_url="http://upstream", api_version=api_version)
    adapter = ADAPTERS[kind](settings)
    call = adapter.to_upstream(ApiRequest(Operation.CHAT, {"model": "m", "messages": MESSAGES}, "m"), "dep")
    return [m["role"] for m in orjson.loads(call.body or b"{}")["messages"]]


@pytest.mark.parametrize(("kind", "version", "roles"), [
    ("azure", "2024-10-21", ["system", "user"]),
    ("azure", "2024-08-01-preview", ["system", "user"]),
    ("azure", "2024-12-01-preview", ["developer", "user"]),
    ("azure", "2025-04-01-preview", ["developer", "user"]),
    ("azure", "preview", ["developer", "user"]),
    ("openai", None, ["developer", "user"]),
])
def test_the_role_follows_the_api_version(kind: str, version: str | None, roles: list[str]) -> None:
    assert _sent_roles(kind, version) == roles
