"""What the state tests share: Redis servers of their own, key prefixes, route tables,
and concurrent clients."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import redis

from tests.harness import KEY_A, KEY_B, table_dict

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, both below 65536."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair for a cluster node")


def new_prefix() -> str:
    return f"llmr-test-{uuid.uuid4().hex[:12]}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class RedisServer:
    """A redis-server of the test's own on a free loopback port; stop() and start() again."""

    def __init__(self, tmp: Path, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.dir = tmp
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), *self.extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 10)
        return self

    def ping(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=0.2)
        try:
            return bool(client.ping())
        except (redis.AuthenticationError, redis.ResponseError):
            return True  # it answers (asking for a password, or full)
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(check: Any, timeout: float, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(interval)


def state_table(url: str, prefix: str, spool: Path, *, key_limits: dict[str, Any] | None = None,
                model_limits: dict[str, Any] | None = None, on_failure: str = "fail_open",
                expected_replicas: int = 1, cluster: bool = False) -> dict[str, Any]:
    """The default test table with shared state and limits on team-a (and gpt-4o-mini)."""
    table = table_dict(state={"redis_url": url, "key_prefix": prefix, "spool_path": str(spool),
                              "socket_timeout": 0.2, "on_failure": on_failure,
                              "expected_replicas": expected_replicas, "cluster": cluster})
    team_a: dict[str, Any] = {"name": "team-a", "key": KEY_A, "models": ["*"]}
    if key_limits:
        team_a["limits"] = key_limits
    table["keys"] = [team_a, {"name": "team-b", "key": KEY_B, "models": ["Llama-3.1-70B-Instruct"]}]
    if model_limits:
        table["models"]["gpt-4o-mini"]["limits"] = model_limits
    return table


def chat_body(stream: bool = False, max_tokens: int = 16, model: str = "gpt-4o-mini") -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens,
                            "messages": [{"role": "user", "content": "Say something about the sea."}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def burst(urls: list[str], count: int, key: str = KEY_A, body: dict[str, Any] | None = None) -> list[int]:
    """`count` chat requests at once, spread round-robin over `urls`; their statuses."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(i: int) -> int:
            async with session.post(urls[i % len(urls)] + "/chat/completions", json=body or chat_body(),
                                    headers={"Authorization": f"Bearer {key}"}) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def environ_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def get_json(url: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def usage_rows(base: str, admin_key: str, **query: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"from": today(), "to": today(), **query})
    status, body = get_json(f"{base}/admin/usage?{params}", admin_key)
    assert status == 200, body
    return list(body["data"])


def usage_total(base: str, admin_key: str, **query: str) -> dict[str, int]:
    totals = dict.fromkeys(("requests", "prompt_tokens", "completion_tokens", "total_tokens", "errors"), 0)
    for row in usage_rows(base, admin_key, **query):
        for name in totals:
            totals[name] += row[name]
    return totals


def wait_for_usage(base: str, admin_key: str, requests: int, timeout: float = 10, **query: str) -> dict[str, int]:
    """The usage API's totals once it counts `requests` (metering is written in the background;
    after a Redis outage the API answers 503 until the gateway sees Redis again)."""
    deadline = time.monotonic() + timeout
    while True:
        status, ready = get_json(f"{base}/readyz", admin_key)
        params = urllib.parse.urlencode({"from": today(), "to": today(), **query})
        # 503 while the gateway has not yet seen that Redis is back (or has just noticed it was gone)
        if status == 200 and ready.get("state") != "degraded" and get_json(
                f"{base}/admin/usage?{params}", admin_key)[0] == 200:
            totals = usage_total(base, admin_key, **query)
            if totals["requests"] >= requests:
                return totals
        if time.monotonic() > deadline:
            raise AssertionError(f"usage did not reach {requests} requests within {timeout}s")
        time.sleep(0.05)


def today() -> str:
    from router.state.metering import today as utc_today

    return utc_today()
