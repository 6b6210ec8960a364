from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.state.helpers import SHARED_REDIS, RedisServer, delete_prefix, free_cluster_port, new_prefix, wait_until


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the machine's Redis, deleted afterwards."""
    value = new_prefix()
    yield value
    delete_prefix(SHARED_REDIS, value)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (to stop and restart), keeping its data across
    restarts as a production Redis would (append-only file, fsync always)."""
    server = RedisServer(tmp_path, None, "--appendonly", "yes", "--appendfsync", "always")
    with server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[RedisServer]]:
    nodes = []
    try:
        for n in range(3):
            node_dir = tmp_path / f"node{n}"
            node_dir.mkdir()
            nodes.append(RedisServer(node_dir, free_cluster_port(), "--cluster-enabled", "yes", "--cluster-config-file",
                                     str(node_dir / "nodes.conf"), "--cluster-node-timeout", "2000").start())
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                        "--cluster-yes"], check=True, capture_output=True, timeout=30)
        first = redis.Redis(port=nodes[0].port, socket_timeout=1)
        wait_until(lambda: first.cluster("info").get("cluster_state") == "ok", 15, 0.1)
        first.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
