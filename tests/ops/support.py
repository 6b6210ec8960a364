"""What the operations tests share: reading /metrics as Prometheus would, free ports,
simulators in a background thread, and a `llm-router serve` subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from router.demo import start_simulators

REPO = Path(__file__).resolve().parents[2]
Series = tuple[str, frozenset[tuple[str, str]]]


def scrape(url: str) -> dict[Series, float]:
    """Every sample of a /metrics page, by sample name and labels."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[Series, float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(before: dict[Series, float], after: dict[Series, float], name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # holds the connection until closed
            return exc.code, dict(exc.headers), exc.read()


class Simulators:
    """The bundled simulators on free loopback ports, served from a background thread."""

    def __init__(self, kinds: set[str]) -> None:
        self.kinds = kinds
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulators", daemon=True)
        self.urls: dict[str, str] = {}
        self.runners: list[web.AppRunner] = []

    def __enter__(self) -> Simulators:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(start_simulators(self.kinds), self.loop)
        self.urls, self.runners = future.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for runner in self.runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def write_table(path: Path, table: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(table, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def serve_process(config: Path, port: int, *extra: str, log_path: Path,
                  ready_timeout: float = 20) -> Iterator[subprocess.Popen[bytes]]:
    """`llm-router serve --config CONFIG --port PORT EXTRA...` until /healthz answers;
    SIGTERM and wait at the end (the log, JSON lines, goes to `log_path`)."""
    command = [sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
               "--port", str(port), *extra]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                assert process.poll() is None, f"serve exited early:\n{log_path.read_text()}"
                try:
                    if http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"serve did not answer in {ready_timeout}s:\n{log_path.read_text()}"
                time.sleep(0.1)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
