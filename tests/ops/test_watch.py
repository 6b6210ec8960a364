"""File watching: a Kubernetes ConfigMap update (a new timestamped directory, then the
`..data` symlink swapped to it) reloads the table; a broken update is refused once
and the running table stays; a same-size edit within the same second counts too."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from router.config.reload import RELOADER
from router.config.watch import FileWatcher, fingerprint, reload_after_change
from router.gateway import GATEWAY
from tests.harness import Gateway, table_dict
from tests.ops.support import Simulators, delta, free_port, http, scrape, serve_process, value

POLL = 0.05


class ConfigMapVolume:
    """The layout the kubelet writes: `routes.yaml -> ..data/routes.yaml`, `..data -> ..<stamp>`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.updates = 0

    @property
    def file(self) -> Path:
        return self.root / "routes.yaml"

    def publish(self, text: str) -> None:
        self.updates += 1
        stamp = self.root / f"..2026_11_25_00_00_{self.updates:02d}.000000001"
        stamp.mkdir()
        (stamp / "routes.yaml").write_text(text, encoding="utf-8")
        (self.root / "..data_tmp").symlink_to(stamp.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")  # the atomic swap
        if not self.file.is_symlink():
            self.file.symlink_to("..data/routes.yaml")


def _until(check: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "nothing happened in time"
        time.sleep(0.02)


def test_fingerprint_follows_the_symlink_swap(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path)
    volume.publish("a: 1\n")
    first = fingerprint(volume.file)
    volume.publish("a: 1\n")  # same content in a new directory: still a change of file
    second = fingerprint(volume.file)
    assert first is not None and second is not None
    assert first.resolved != second.resolved and first.sha256 == second.sha256
    assert fingerprint(tmp_path / "missing.yaml") is None


async def _watch(path: Path, on_change: Callable[[], None]) -> FileWatcher:
    watcher = FileWatcher(path, on_change, POLL)
    await watcher.start()
    return watcher


def test_an_edit_of_the_same_size_within_the_same_second_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    stamp = path.stat().st_mtime_ns
    changes: list[int] = []
    with Gateway(table_dict()) as gw:
        watcher = gw.run(_watch(path, lambda: changes.append(1)))
        try:
            path.write_text("a: 2\n", encoding="utf-8")
            os.utime(path, ns=(stamp, stamp))  # as if within the file system's mtime granularity
            _until(lambda: len(changes) == 1)
        finally:
            gw.run(watcher.stop())


@pytest.fixture()
def volume(tmp_path: Path) -> ConfigMapVolume:
    volume = ConfigMapVolume(tmp_path)
    volume.publish(yaml.safe_dump(table_dict()))
    return volume


@pytest.fixture()
def gw(volume: ConfigMapVolume) -> Iterator[Gateway]:
    with Gateway(table_dict(), file=str(volume.file)) as gateway:
        yield gateway


def _models(gw: Gateway) -> set[str]:
    return {m.id for m in gw.client().models.list().data}


def test_a_configmap_update_is_reloaded_and_a_broken_one_refused_once(gw: Gateway, volume: ConfigMapVolume) -> None:
    assert gw.app is not None
    app = gw.app
    watcher = gw.run(_watch(app[RELOADER].path, lambda: reload_after_change(app)))
    try:
        before = scrape(gw.url("/metrics"))
        changed: dict[str, Any] = table_dict()
        changed["models"]["watched-model"] = {"targets": [{"provider": "local", "model": "upstream/watched"}]}
        volume.publish(yaml.safe_dump(changed))
        _until(lambda: "watched-model" in _models(gw))
        assert gw.client().chat.completions.create(
            model="watched-model", messages=[{"role": "user", "content": "hi"}]).model == "watched-model"

        version = app[GATEWAY].runtime.table.version
        volume.publish("models: [this is: not a table\n")
        _until(lambda: delta(before, scrape(gw.url("/metrics")), "llm_router_config_reloads_total",
                             result="failure") == 1)
        time.sleep(POLL * 6)  # several polls more: the broken file is not retried over and over
        after = scrape(gw.url("/metrics"))
        assert delta(before, after, "llm_router_config_reloads_total", result="failure") == 1
        assert delta(before, after, "llm_router_config_reloads_total", result="success") == 1
        assert app[GATEWAY].runtime.table.version == version
        assert "watched-model" in _models(gw)
    finally:
        gw.run(watcher.stop())


def _routes(url: str, *extra_models: str) -> str:
    models = {name: {"targets": [{"provider": "local", "model": f"upstream/{name}"}]} for name in ("m1", *extra_models)}
    return str(yaml.safe_dump({"providers": {"local": {"kind": "openai-compatible", "base_url": url}}, "models": models,
                           "keys": [{"name": "team-a", "key": "sk-watch-a", "models": ["*"]}]}))


def _serves(port: int, model: str) -> bool:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    return http("POST", f"http://127.0.0.1:{port}/v1/chat/completions", body,
                {"Authorization": "Bearer sk-watch-a", "Content-Type": "application/json"})[0] == 200


def test_serve_with_two_workers_and_watch_reloads_each_worker_on_a_configmap_swap(tmp_path: Path) -> None:
    volume = ConfigMapVolume(tmp_path / "configmap")
    volume.root.mkdir()
    with Simulators({"openai-compatible"}) as sims:
        url = sims.urls["openai-compatible"]
        volume.publish(_routes(url))
        port, log = free_port(), tmp_path / "serve.log"
        with serve_process(volume.file, port, "--workers", "2", "--watch", log_path=log):
            _until(lambda: log.read_text().count('"message":"serving"') == 2, 20)
            volume.publish(_routes(url, "m2"))
            _until(lambda: log.read_text().count('"message":"route table reloaded"') == 2, 10)
            reloads = [orjson.loads(line) for line in log.read_text().splitlines() if "route table reloaded" in line]
            assert {r["trigger"] for r in reloads} == {"file"} and len({r["pid"] for r in reloads}) == 2
            assert all(_serves(port, "m2") for _ in range(10))  # new connections: both workers


def test_a_post_reload_and_a_sighup_reach_every_worker(tmp_path: Path) -> None:
    with Simulators({"openai-compatible"}) as sims:
        url = sims.urls["openai-compatible"]
        config = tmp_path / "routes.yaml"
        config.write_text(_routes(url).replace("keys:", "admin: {key: sk-watch-admin}\nkeys:"), encoding="utf-8")
        port, log = free_port(), tmp_path / "serve.log"
        with serve_process(config, port, "--workers", "2", log_path=log) as server:
            _until(lambda: log.read_text().count('"message":"serving"') == 2, 20)
            config.write_text(_routes(url, "m2").replace("keys:", "admin: {key: sk-watch-admin}\nkeys:"),
                              encoding="utf-8")
            status = http("POST", f"http://127.0.0.1:{port}/admin/reload",
                          headers={"Authorization": "Bearer sk-watch-admin"})[0]
            assert status == 200
            # The worker that answered reloaded; the supervisor's SIGHUP brings the other.
            _until(lambda: log.read_text().count('"message":"route table reloaded"') == 2, 10)
            reloads = [orjson.loads(line) for line in log.read_text().splitlines() if "route table reloaded" in line]
            assert sorted(r["trigger"] for r in reloads) == ["api", "signal"]
            assert all(_serves(port, "m2") for _ in range(10))
            # Both workers serve the new version: the replaced one is no longer shown.
            versions = [dict(labels)["version"] for name, labels in scrape(f"http://127.0.0.1:{port}/metrics")
                        if name == "llm_router_config_info"]
            assert versions == [reloads[0]["version"]]
            # Three successes: the two swaps, and the answering worker's reload on the supervisor's
            # SIGHUP, which finds its table unchanged (a successful reload all the same).
            _until(lambda: log.read_text().count('"message":"route table unchanged"') == 1, 10)
            assert value(scrape(f"http://127.0.0.1:{port}/metrics"), "llm_router_config_reloads_total",
                         result="success") == 3

            # SIGHUP to the supervisor reaches both workers too.
            config.write_text(_routes(url, "m3").replace("keys:", "admin: {key: sk-watch-admin}\nkeys:"),
                              encoding="utf-8")
            server.send_signal(signal.SIGHUP)
            _until(lambda: log.read_text().count('"message":"route table reloaded"') == 4, 10)
            reloads = [orjson.loads(line) for line in log.read_text().splitlines() if "route table reloaded" in line]
            assert [r["trigger"] for r in reloads[2:]] == ["signal", "signal"]
            assert len({r["pid"] for r in reloads[2:]}) == 2
            assert all(_serves(port, "m3") for _ in range(10))
