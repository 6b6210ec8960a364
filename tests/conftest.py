from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Gateway, table_dict

# Real recorded upstream bodies, copied byte for byte from shared/reference/samples
# (provenance and sha256 in tests/samples/SOURCES.md).
SAMPLES = Path(__file__).with_name("samples")


def sample_path(name: str) -> Path:
    return SAMPLES / name


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(table_dict()) as gw:
        yield gw
