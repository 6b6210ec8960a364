"""Reloading the route table under load: clients streaming all along see no failed
request; a new model works right after a successful reload, a removed one is gone;
a broken file is refused with every error and changes nothing; the connection pool
of a removed provider closes only once the requests using it have ended."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from router.gateway import GATEWAY
from tests.harness import ADMIN_KEY, KEY_A, Gateway, table_dict
from tests.ops.support import delta, http, scrape

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


def _write(path: Path, table: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(table, sort_keys=False), encoding="utf-8")


def _reload(gw: Gateway) -> tuple[int, dict[str, Any]]:
    status, _, body = http("POST", gw.url("/admin/reload"), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    return status, orjson.loads(body)


@pytest.fixture()
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    _write(path, table_dict())
    return path


@pytest.fixture()
def gw(routes: Path) -> Iterator[Gateway]:
    with Gateway(table_dict(), file=str(routes)) as gateway:
        yield gateway


class StreamingClients:
    """Threads streaming chat completions back to back until stopped; every failure kept."""

    def __init__(self, gw: Gateway, model: str, threads: int = 4) -> None:
        self.gw = gw
        self.model = model
        self.stop = threading.Event()
        self.completed = [0] * threads
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> StreamingClients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)

    def _run(self, index: int) -> None:
        client = openai.OpenAI(api_key=KEY_A, base_url=self.gw.url("/v2"), max_retries=0, timeout=10)
        try:
            while not self.stop.is_set():
                try:
                    chunks = list(client.chat.completions.create(model=self.model, messages=HELLO, stream=True))
                    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                    assert text and chunks[-1].choices[0].finish_reason == "stop", "stream ended early"
                    self.completed[index] += 1
                except Exception as exc:  # every kind of failure is what this test looks for
                    self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    def wait_for_each(self, streams: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        target = [c + streams for c in self.completed]
        while any(c < t for c, t in zip(self.completed, target, strict=True)):
            assert time.monotonic() < deadline and not self.failures, (self.completed, self.failures)
            time.sleep(0.02)


def _changed_table() -> dict[str, Any]:
    """A new model; a removed model; a removed provider with its model."""
    table = table_dict()
    table["models"]["new-model"] = {"targets": [{"provider": "local", "model": "upstream/new-model"}]}
    del table["models"]["gemini-1.5-pro"]
    del table["models"]["claude-3-5-sonnet"]
    del table["providers"]["anthropic"]
    return table


def _broken_table() -> tuple[dict[str, Any], list[str]]:
    table = _changed_table()
    table["models"]["new-model"]["targets"][0]["provider"] = "no-such-provider"
    table["models"]["bad-type"] = {"type": "painting", "targets": [{"provider": "local", "model": "x"}]}
    table["keys"].append({"name": "keyless", "models": ["*"]})
    return table, ["models.new-model.targets[0].provider", "models.bad-type.type", "keys[2]"]


def test_reloads_under_streaming_load_fail_no_request(gw: Gateway, routes: Path) -> None:
    gw.sim("openai").stream_delay = 0.01  # streams last a while: reloads land in the middle of them
    client = gw.client()
    before = scrape(gw.url("/metrics"))
    with StreamingClients(gw, "gpt-4o-mini") as streams:
        streams.wait_for_each(1)
        _write(routes, _changed_table())
        status, answer = _reload(gw)
        assert status == 200 and answer["object"] == "config"
        assert answer["version"] != gw.table.version  # type: ignore[union-attr]
        # Right after the 200: the new model answers, the removed ones are gone.
        reply = client.chat.completions.create(model="new-model", messages=HELLO)
        assert reply.model == "new-model" and reply.choices[0].message.content
        for removed in ("gemini-1.5-pro", "claude-3-5-sonnet"):
            with pytest.raises(openai.NotFoundError):
                client.chat.completions.create(model=removed, messages=HELLO)
        streams.wait_for_each(1)

        broken, error_paths = _broken_table()
        _write(routes, broken)
        status, refused = _reload(gw)
        assert status == 400 and refused["error"]["code"] == "invalid_config"
        for where in error_paths:
            assert any(where in error for error in refused["errors"]), (where, refused["errors"])
            assert where in refused["error"]["message"]
        assert all(str(routes) in error for error in refused["errors"])
        # Nothing changed: the last good table serves on.
        assert gw.run(_running_version(gw)) == answer["version"]
        assert client.chat.completions.create(model="new-model", messages=HELLO).model == "new-model"
        streams.wait_for_each(1)

        _write(routes, table_dict())  # and back
        assert _reload(gw)[0] == 200
        assert client.chat.completions.create(model="claude-3-5-sonnet", messages=HELLO).model == "claude-3-5-sonnet"
        streams.wait_for_each(1)
    gw.sim("openai").stream_delay = 0.0
    assert streams.failures == []
    assert sum(streams.completed) >= 12
    after = scrape(gw.url("/metrics"))
    assert delta(before, after, "llm_router_config_reloads_total", result="success") == 2
    assert delta(before, after, "llm_router_config_reloads_total", result="failure") == 1


async def _running_version(gw: Gateway) -> str:
    return gw.app[GATEWAY].runtime.table.version  # type: ignore[index]


def test_reloading_an_unchanged_file_swaps_nothing(gw: Gateway) -> None:
    before = scrape(gw.url("/metrics"))
    runtime = gw.app[GATEWAY].runtime  # type: ignore[index]
    status, answer = _reload(gw)
    assert status == 200 and answer["version"] == runtime.table.version
    assert gw.app[GATEWAY].runtime is runtime  # type: ignore[index]
    # Still a reload that ended with a valid table serving: a success (contract, Health).
    after = scrape(gw.url("/metrics"))
    assert delta(before, after, "llm_router_config_reloads_total", result="success") == 1
    assert delta(before, after, "llm_router_config_reloads_total", result="failure") == 0


def _two_provider_table() -> dict[str, Any]:
    return table_dict(
        providers={"keep": {"kind": "openai-compatible", "base_url": "http://placeholder/v1"},
                   "gone": {"kind": "openai-compatible", "base_url": "http://placeholder/v1"}},
        models={"kept": {"targets": [{"provider": "keep", "model": "up-kept"}]},
                "going": {"targets": [{"provider": "gone", "model": "up-going"}]}},
        keys=[{"name": "team-a", "key": KEY_A, "models": ["*"]}])


def test_a_removed_providers_pool_closes_once_its_last_stream_ends(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    _write(routes, _two_provider_table())
    with Gateway(_two_provider_table(), file=str(routes)) as gw:
        client = gw.client()
        client.chat.completions.create(model="kept", messages=HELLO)
        gateway = gw.app[GATEWAY]  # type: ignore[index]
        kept_pool = gateway.sessions["keep"]
        release = gw.sim("openai-compatible").hold_after_first_chunk = threading.Event()
        first_chunk = threading.Event()
        outcome: list[str] = []

        def stream() -> None:
            text = ""
            for chunk in client.chat.completions.create(model="going", messages=HELLO, stream=True):
                first_chunk.set()
                text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
            outcome.append(text)

        streaming = threading.Thread(target=stream, daemon=True)
        streaming.start()
        assert first_chunk.wait(5)
        going_pool = gateway.sessions["gone"]
        table = _two_provider_table()
        del table["providers"]["gone"], table["models"]["going"]
        _write(routes, table)
        assert _reload(gw)[0] == 200
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="going", messages=HELLO)
        time.sleep(0.2)
        assert not going_pool.closed, "closed under a stream still using it"
        release.set()
        streaming.join(5)
        assert outcome and outcome[0], "the stream that started before the reload did not finish"
        deadline = time.monotonic() + 3
        while not going_pool.closed:
            assert time.monotonic() < deadline, "the removed provider's pool stayed open"
            time.sleep(0.02)
        assert gateway.sessions["keep"] is kept_pool and not kept_pool.closed  # unchanged provider: same pool
        gw.sim("openai-compatible").hold_after_first_chunk = None


def test_a_reload_says_which_changes_wait_for_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    from router.config.reload import _warn_of_restart_only_changes
    from router.config.schema import parse
    from tests.harness import table_dict

    before = parse(table_dict())
    after = parse(table_dict(state={"key_prefix": "other:"}, server={"port": 9999}))
    with caplog.at_level("WARNING", logger="llm_router"):
        _warn_of_restart_only_changes(before, after)
    [record] = [r for r in caplog.records if "next restart" in r.getMessage()]
    assert record.fields["settings"] == ["server.port", "state"]  # type: ignore[attr-defined]
