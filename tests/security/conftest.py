from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Gateway, table_dict


def gateway_with_file(directory: Path, table: dict[str, Any]) -> Gateway:
    """A harness gateway whose table is also on disk, so that /admin/reload really reloads it."""
    path = directory / "routes.yaml"
    path.write_text(json.dumps(table))  # YAML is a superset of JSON
    return Gateway(table, file=str(path))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway_with_file(tmp_path_factory.mktemp("security"), table_dict()) as gateway:
        yield gateway
