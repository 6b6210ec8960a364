"""Tokens that come from a command (Vertex) are fetched when the table is loaded, so
the first request does not wait for them or fail."""

from __future__ import annotations

import asyncio

import orjson

from providers.base import ApiRequest, Operation
from router.config.runtime import build_runtime, refresh_credentials
from router.config.schema import parse


def test_token_command_is_run_before_the_first_request() -> None:
    table = parse({
        "providers": {"vertex": {"kind": "vertex", "base_url": "https://europe-west4-aiplatform.googleapis.com",
                                 "project": "p", "location": "europe-west4", "token_command": "printf tok-123"}},
        "models": {"gemini-1.5-pro": {"targets": [{"provider": "vertex", "model": "gemini-1.5-pro-002"}]}},
        "keys": [{"name": "t", "key": "k", "models": ["*"]}],
    })
    runtime = build_runtime(table)
    asyncio.run(refresh_credentials(runtime))
    adapter = runtime.adapters["vertex"]
    assert adapter is not None
    request = ApiRequest(Operation.CHAT, {"model": "gemini-1.5-pro", "messages": [{"role": "user", "content": "hi"}]},
                         "gemini-1.5-pro")
    call = adapter.to_upstream(request, "gemini-1.5-pro-002")
    assert call.headers["authorization"] == "Bearer tok-123"
    assert "/projects/p/locations/europe-west4/" in call.url
    assert orjson.loads(call.body or b"")["contents"][0]["parts"] == [{"text": "hi"}]


def test_a_failing_token_command_does_not_stop_the_load() -> None:
    table = parse({
        "providers": {"vertex": {"kind": "vertex", "base_url": "https://x.googleapis.com", "project": "p",
                                 "location": "l", "token_command": "false"}},
        "models": {"m": {"targets": [{"provider": "vertex", "model": "m"}]}},
        "keys": [{"name": "t", "key": "k", "models": ["*"]}],
    })
    asyncio.run(refresh_credentials(build_runtime(table)))  # logged, not raised
