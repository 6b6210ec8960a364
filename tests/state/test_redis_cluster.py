"""The limit and metering scripts on a Redis Cluster: no CROSSSLOT, same answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import openai
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from router.gateway import GATEWAY
from router.state.redis_limits import limit_key
from tests.harness import ADMIN_KEY, Gateway
from tests.state.helpers import RedisServer, burst, chat_body, state_table, wait_for_usage, wait_until


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


ROUNDS = 10


def _node_id(node: redis.Redis) -> str:
    return str(node.execute_command("CLUSTER", "MYID").decode())


def _migrate_slot(nodes: list[RedisServer], slot: int, source: RedisServer, target: RedisServer) -> None:
    """Move one slot with its keys, the way redis-cli --cluster reshard does."""
    src, dst = redis.Redis(port=source.port, socket_timeout=5), redis.Redis(port=target.port, socket_timeout=5)
    try:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(src))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(dst))
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys)
            time.sleep(0.02)  # the gateway's scripts run between batches, on a half-moved slot
        for node in nodes:
            with redis.Redis(port=node.port, socket_timeout=5) as each:
                each.execute_command("CLUSTER", "SETSLOT", slot, "NODE", _node_id(dst))
    finally:
        src.close()
        dst.close()


def _owner(nodes: list[RedisServer], slot: int) -> RedisServer:
    with redis.Redis(port=nodes[0].port, socket_timeout=5) as first:
        for start, end, master, *_ in first.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return next(n for n in nodes if n.port == int(master[1]))
    raise AssertionError(f"no owner for slot {slot}")


@pytest.mark.slow
def test_moving_the_limits_slot_under_load_gives_no_500(cluster: list[RedisServer], tmp_path: Path) -> None:
    prefix = "llmr-reshard:"
    table = state_table(cluster[0].url, prefix, tmp_path / "spool.jsonl", cluster=True,
                        key_limits={"rpm": 100000, "tpm": 10**8, "concurrency": 200})
    slot = key_slot(limit_key(prefix, "key:team-a", "rpm").encode())
    statuses: list[int] = []
    with Gateway(table) as gw:
        assert gw.app is not None
        wait_until(lambda: gw.app is not None and gw.app[GATEWAY].redis_ready, 5)
        asyncio.run(burst([gw.url("/v2")], 20))  # the slot has keys to move

        def load() -> None:
            for _ in range(ROUNDS):
                statuses.extend(asyncio.run(burst([gw.url("/v2")], 200)))

        loader = threading.Thread(target=load)
        loader.start()
        moves = 0
        while loader.is_alive() and moves < 40:
            owner = _owner(cluster, slot)
            _migrate_slot(cluster, slot, owner, next(n for n in cluster if n is not owner))
            moves += 1
        loader.join(120)
        assert moves >= 2  # the slot moved while requests were running
        wait_until(lambda: gw.app is not None and gw.app[GATEWAY].redis_ready, 10)
        served = statuses.count(200)
        # No 5xx, ever. While a move makes the state layer fail over to fail_open, the local split of the
        # concurrency limit may refuse a few (429 with Retry-After: the policy), depending on the timing.
        assert len(statuses) == ROUNDS * 200 and set(statuses) <= {200, 429}, Counter(statuses)
        assert served >= 0.9 * len(statuses), Counter(statuses)
        assert wait_for_usage(gw.url(""), ADMIN_KEY, served + 20, timeout=20)["requests"] == served + 20
