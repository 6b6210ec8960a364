from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Gateway, table_dict

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "samples"


def sample_path(name: str) -> Path:
    """A recorded upstream body from shared/reference/samples (copied into tests/samples too)."""
    local = Path(__file__).with_name("samples") / name
    return local if local.exists() else SAMPLES / name


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with Gateway(table_dict()) as gw:
        yield gw
