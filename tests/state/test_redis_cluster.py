"""The limit and metering scripts on a Redis Cluster: no CROSSSLOT, same answers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis
from redis.cluster import RedisCluster

from router.gateway import GATEWAY
from router.state.redis_limits import limit_key
from tests.harness import ADMIN_KEY, Gateway
from tests.state.helpers import RedisServer, chat_body, free_cluster_port, state_table, wait_for_usage, wait_until


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


def test_limit_scripts_run_on_a_cluster(cluster: list[RedisServer], tmp_path: Path) -> None:
    table = state_table(cluster[1].url, "llmr-cluster:", tmp_path / "spool.jsonl", cluster=True,
                        key_limits={"rpm": 3, "tpm": 100000}, model_limits={"rpm": 50, "concurrency": 5})
    table["keys"][0]["model_limits"] = {"gpt-4o-mini": {"rpm": 10, "tpm": 50000, "concurrency": 2}}
    with Gateway(table) as gw:
        assert gw.app is not None
        wait_until(lambda: gw.app is not None and gw.app[GATEWAY].redis_ready, 5)
        client = gw.client()
        answers = [client.chat.completions.with_raw_response.create(**chat_body()) for _ in range(3)]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(**chat_body())
        wait_for_usage(gw.url(""), ADMIN_KEY, 3)
        assert gw.app[GATEWAY].redis_ready  # no script failed over to the local fallback
        assert wait_for_usage(gw.url(""), ADMIN_KEY, 3, key="team-a")["requests"] == 3
    nodes = RedisCluster(host="127.0.0.1", port=cluster[0].port, socket_timeout=2)
    try:
        # The buckets are in the cluster (not in a local fallback), all in the one slot of their tag.
        keys = [limit_key("llmr-cluster:", scope, kind) for scope, kind in
                (("key:team-a", "rpm"), ("model:gpt-4o-mini", "rpm"), ("key-model:team-a:gpt-4o-mini", "tpm"))]
        assert all(nodes.exists(key) for key in keys)
        slots = {nodes.keyslot(key) for key in keys}  # type: ignore[no-untyped-call]
        assert len(slots) == 1
    finally:
        nodes.close()
