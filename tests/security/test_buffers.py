"""Request and answer buffers are freed when a request fails: no exception keeps one
alive in a reference cycle (only a full garbage collection would free it; 80 uploads
over the limit took a gateway from 51 MB to 1 GB)."""

from __future__ import annotations

import asyncio
import gc
import io
import socket
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from providers.base import UpstreamError
from router.app import create_app
from router.config.schema import parse
from router.upstream import call as upstream
from tests.harness import KEY_A, table_dict
from tests.ops.support import free_port, serve_process, write_table

BIG = 1_000_000  # a buffer at least this large left in a cycle is what these tests look for
BOUNDARY = "b0undary"


def upload(size: int) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-large-v3\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()
    return head + b"\0" * size + f"\r\n--{BOUNDARY}--\r\n".encode()


def _holds_big(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) >= BIG
    if isinstance(value, tuple):  # an upload is a (name, bytes, type) tuple
        return any(isinstance(v, (bytes, bytearray)) and len(v) >= BIG for v in value)
    return False


def big_buffers_in(garbage: list[Any]) -> list[str]:
    """Where the garbage holds a large buffer: frames' locals, dicts, lists and tuples."""
    found = []
    for item in garbage:
        if isinstance(item, types.FrameType):
            found += [f"{item.f_code.co_name}.{k}" for k, v in item.f_locals.items() if _holds_big(v)]
        elif isinstance(item, dict):
            found += [f"dict[{k!r}]" for k, v in item.items() if _holds_big(v)]
        elif isinstance(item, (list, tuple)) and any(_holds_big(v) for v in item):
            found.append(type(item).__name__)
    return found


@contextmanager
def left_in_cycles() -> Iterator[list[Any]]:
    """What the block left in reference cycles: the collector is off meanwhile, so nothing
    is freed but by reference counting, and what is left over is then collected and kept."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    garbage: list[Any] = []
    try:
        yield garbage
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage.extend(gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        if enabled:
            gc.enable()


async def _post_upload(table: dict[str, Any], size: int) -> int:
    server = TestServer(create_app(parse(table)))
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session, session.post(
                server.make_url("/v2/audio/transcriptions"), data=io.BytesIO(upload(size)),
                headers={"Authorization": f"Bearer {KEY_A}",
                         "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}) as response:
            await response.read()
            return response.status
    finally:
        await server.close()


def test_an_upload_over_the_limit_leaves_no_buffer_in_a_cycle() -> None:
    table = table_dict(server={"request_limits": {"max_file_bytes": 2 * BIG}})
    with left_in_cycles() as garbage:
        assert asyncio.run(_post_upload(table, 3 * BIG)) == 413
    assert big_buffers_in(garbage) == []


def test_an_upload_to_an_unreachable_upstream_leaves_no_buffer_in_a_cycle() -> None:
    table = table_dict()
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        table["providers"]["local"]["base_url"] = f"http://127.0.0.1:{closed.getsockname()[1]}/v1"
        with left_in_cycles() as garbage:
            assert asyncio.run(_post_upload(table, 2 * BIG)) == 502
    assert big_buffers_in(garbage) == []


async def _read_oversized_answer() -> UpstreamError | None:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no length announced
        await response.prepare(request)
        for _ in range(4):
            await response.write(b"x" * BIG)
        return response

    app = web.Application()
    app.router.add_get("/", answer)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.get(server.make_url("/"))
            try:
                await upstream.read_body(response)
            except UpstreamError as error:
                return error
            return None
    finally:
        await server.close()


def test_an_upstream_answer_over_the_limit_leaves_no_buffer_in_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "MAX_RESPONSE_BODY", 2 * BIG)
    with left_in_cycles() as garbage:
        error = asyncio.run(_read_oversized_answer())
        assert error is not None and error.status == 502
        del error
    assert big_buffers_in(garbage) == []


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _send_upload(port: int, size: int) -> bytes:
    """One upload of `size` bytes over a raw socket (sent in 1 MiB pieces); the status line."""
    body = upload(size)
    head = (f"POST /v2/audio/transcriptions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {KEY_A}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        view = memoryview(body)
        try:
            for start in range(0, len(body), 1 << 20):
                sock.sendall(view[start:start + (1 << 20)])
        except OSError:  # the gateway may answer 413 and close before the whole body is in
            pass
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@pytest.mark.slow
def test_an_upload_storm_over_the_limit_keeps_a_real_gateway_small(tmp_path: Path) -> None:
    """40 uploads of 27 MB (over the 25 MiB default) to `llm-router serve`: before, each
    stayed in memory until a full collection (20 took the process from 52 to 281 MB)."""
    port = free_port()
    config = write_table(tmp_path / "routes.yaml", table_dict())
    with serve_process(config, port, log_path=tmp_path / "gateway.log") as process:
        before = _rss_mib(process.pid)
        for _ in range(40):
            assert _send_upload(port, 27_000_000) == b"HTTP/1.1 413 Request Entity Too Large"
        after = _rss_mib(process.pid)
    assert after - before < 100, (before, after)
