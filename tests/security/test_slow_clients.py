"""Slow and idle clients against a real `llm-router serve`: connections that send
nothing, trickle their headers, or stall in their body are closed by the gateway within
its client timeouts; a flood of idle connections is held to `server.max_connections`
and does not starve a real request. Before, all of them stayed open for good (20,000
idle connections used the whole descriptor limit)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import table_dict
from tests.ops.support import free_port, http, serve_process, write_table

pytestmark = pytest.mark.slow
SHORT = 0.5  # seconds: every client timeout of the first gateway
WAIT = 10.0  # how long a test waits for the gateway to close a connection, at most


def _gateway(tmp_path: Path, server: dict[str, Any]) -> Iterator[tuple[int, int]]:
    port = free_port()
    config = write_table(tmp_path / "routes.yaml", table_dict(server=server))
    with serve_process(config, port, log_path=tmp_path / "gateway.log") as process:
        yield port, process.pid


@pytest.fixture(scope="module")
def short_timeouts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    timeouts = {"header": SHORT, "body_idle": SHORT, "keep_alive": SHORT}
    yield from _gateway(tmp_path_factory.mktemp("slow"), {"client_timeouts": timeouts})


def closed_by_gateway(sock: socket.socket) -> bool:
    """Whether the gateway closes `sock` within WAIT seconds (whatever it answers first)."""
    sock.settimeout(WAIT)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset
        pass
    return True


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=WAIT)


def test_a_connection_that_sends_nothing_is_closed(short_timeouts: tuple[int, int]) -> None:
    with connect(short_timeouts[0]) as sock:
        assert closed_by_gateway(sock)


def test_headers_trickled_a_byte_at_a_time_are_cut_off(short_timeouts: tuple[int, int]) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n" + b"X-Slow: " + b"a" * 1000
    with connect(short_timeouts[0]) as sock:
        sock.settimeout(0.05)
        sent = 0
        try:
            for byte in request:  # a byte every 50 ms, far past the 0.5 s header timeout if all were sent
                sock.send(bytes([byte]))
                sent += 1
                try:
                    if sock.recv(1) == b"":
                        break
                except TimeoutError:
                    pass
        except OSError:
            pass
        assert sent < len(request)
        assert closed_by_gateway(sock)


def test_a_body_that_stops_coming_is_cut_off(short_timeouts: tuple[int, int]) -> None:
    head = (b"POST /v2/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer sk-team-a-test\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    with connect(short_timeouts[0]) as sock:
        sock.sendall(head + b'{"model": "gpt-4o", ')
        assert closed_by_gateway(sock)


def test_an_idle_kept_alive_connection_is_closed(short_timeouts: tuple[int, int]) -> None:
    with connect(short_timeouts[0]) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert closed_by_gateway(sock)


def test_a_prompt_client_is_served_as_before(short_timeouts: tuple[int, int]) -> None:
    assert http("GET", f"http://127.0.0.1:{short_timeouts[0]}/healthz")[0] == 200


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_an_idle_flood_is_bounded_and_does_not_starve_a_real_request(tmp_path: Path) -> None:
    """300 idle connections against max_connections 50 (timeouts long, so only the bound acts)."""
    limit, flood = 50, 300
    for port, pid in _gateway(tmp_path, {"max_connections": limit}):
        baseline = open_descriptors(pid)
        idle = [connect(port) for _ in range(flood)]
        try:
            deadline = time.monotonic() + WAIT
            while open_descriptors(pid) > baseline + limit and time.monotonic() < deadline:
                time.sleep(0.05)
            under_flood = open_descriptors(pid)
            assert under_flood <= baseline + limit, (baseline, under_flood)
            status, _, body = http("GET", f"http://127.0.0.1:{port}/healthz")
            assert status == 200, body
        finally:
            for sock in idle:
                sock.close()
