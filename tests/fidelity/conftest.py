"""One gateway in front of the simulators for the fidelity tests (issue 14): the default
test table plus the models these tests need."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from providers.simulators.common import Fault
from router.gateway import GATEWAY
from tests.harness import Gateway, table_dict

FAST = {"connect": 0.5, "first_byte": 2, "idle": 1, "total": 10}
AZURE_PATH = "/openai/deployments/"


def fidelity_table() -> dict[str, Any]:
    table = table_dict()
    table["providers"]["azure"].update(timeouts=FAST, max_retries=0)
    table["providers"]["vertex"] = {"kind": "vertex", "base_url": "http://placeholder", "project": "p",
                                    "location": "europe-west4", "api_key": "vertex-token-test"}
    models = table["models"]
    # The default table's pairing: gpt-4o (Azure) falls back to Claude.
    models["gpt-4o"]["fallbacks"] = ["claude-3-5-sonnet"]
    models["limited-4o"] = {"meta_data": {"max_sequence_length": 128000, "max_output_length": 16384},
                            "limits": {"tpm": 40000},
                            "targets": [{"provider": "openai", "model": "gpt-4o-2024-08-06"}]}
    models["small-window"] = {"meta_data": {"max_sequence_length": 1000, "max_output_length": 256},
                              "context_window_fallbacks": ["gemini-1.5-pro"],
                              "targets": [{"provider": "openai", "model": "gpt-4o-mini-2024-07-18"}]}
    models["gemini-embedding-001"] = {"type": "embedding", "meta_data": {"hidden_size": 3072},
                                      "targets": [{"provider": "gemini", "model": "gemini-embedding-001"}]}
    models["vertex-embedding"] = {"type": "embedding", "meta_data": {"hidden_size": 3072},
                                  "targets": [{"provider": "vertex", "model": "gemini-embedding-001"}]}
    models["text-embedding-3-small"] = {"type": "embedding", "tokenizer": "cl100k_base",
                                        "meta_data": {"max_sequence_length": 8191, "hidden_size": 1536},
                                        "targets": [{"provider": "openai", "model": "text-embedding-3-small"}]}
    models["bge-m3"] = {"type": "embedding", "meta_data": {"max_sequence_length": 8192, "hidden_size": 1024},
                        "targets": [{"provider": "local", "model": "BAAI/bge-m3"}]}
    models["whisper-large-v3"]["targets"] = [{"provider": "local", "model": "openai/whisper-large-v3"}]
    return table


@pytest.fixture(scope="package")
def gw() -> Iterator[Gateway]:
    with Gateway(fidelity_table()) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def clean_slate(gw: Gateway) -> Iterator[None]:
    gw.app[GATEWAY].guards = None  # type: ignore[index]
    yield
    for kind in ("openai", "anthropic", "gemini"):
        gw.sim(kind).faults.clear()


def azure_down(gw: Gateway, times: int = 5) -> None:
    gw.sim("azure").faults.extend(Fault(status=503, path=AZURE_PATH) for _ in range(times))
