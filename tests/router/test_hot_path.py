"""The hot path's two structural promises: one pooled HTTP session per provider (none
created per request) and streams relayed as they arrive (never buffered)."""

from __future__ import annotations

import threading

import pytest

from router import gateway as gateway_module
from router.gateway import GATEWAY
from tests.harness import Gateway


def test_no_http_session_is_created_per_request(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    client = gateway.client()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "warm up"}])
    created: list[str] = []
    original = gateway_module._session_for

    def counting(provider):  # type: ignore[no-untyped-def]
        created.append(provider.name)
        return original(provider)

    monkeypatch.setattr(gateway_module, "_session_for", counting)
    sessions_before = dict(gateway.app[GATEWAY].sessions)  # type: ignore[index]
    for i in range(20):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}])
        list(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "s"}],
                                            stream=True))
    assert created == []
    assert gateway.app[GATEWAY].sessions["openai"] is sessions_before["openai"]  # type: ignore[index]


def test_streams_are_relayed_chunk_by_chunk(gateway: Gateway) -> None:
    sim = gateway.sim("openai")
    sim.hold_after_first_chunk = threading.Event()
    try:
        stream = gateway.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a few words please"}], stream=True)
        chunks = iter(stream)
        first = next(chunks)
        # The upstream is holding back everything after its first chunk until we have that chunk:
        # a gateway that buffered would never have handed it over.
        assert first.choices[0].delta.role == "assistant"
        sim.hold_after_first_chunk.set()
        rest = list(chunks)
        assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices).strip()
    finally:
        sim.hold_after_first_chunk = None
