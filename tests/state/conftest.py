from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.state.helpers import SHARED_REDIS, RedisServer, delete_prefix, new_prefix


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
