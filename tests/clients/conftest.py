"""The clients' suite: the shipped route table served as `llm-router demo` serves it (every
provider a simulator on loopback), for the real client packages teams use. Nothing leaves the
machine: tiktoken reads the encodings LiteLLM's wheel ships, LiteLLM its bundled price map."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import litellm.litellm_core_utils.tokenizers as litellm_tokenizers
import pytest
import yaml

from tests.harness import Gateway

ROUTES = Path(__file__).resolve().parents[2] / "routes.yaml"
CLIENT_KEY = "sk-clients-test"
# tiktoken would download its encodings at first use; LiteLLM's wheel ships them (cl100k_base, o200k_base...).
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(litellm_tokenizers.__file__).parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="package")
def gw() -> Iterator[Gateway]:
    table: dict[str, Any] = yaml.safe_load(ROUTES.read_text(encoding="utf-8"))
    table["keys"].append({"name": "clients-test", "key": CLIENT_KEY, "models": ["*"]})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEMO_API_KEY_SHA256", hashlib.sha256(b"unused-demo-key").hexdigest())
        env.setenv("ROUTER_ADMIN_KEY", "sk-admin-clients-test")
        env.delenv("REDIS_URL", raising=False)
        with Gateway(table, str(ROUTES)) as gateway:
            yield gateway


@pytest.fixture(scope="package")
def http() -> Iterator[httpx.Client]:
    """One HTTP client for the clients that take one, closed at the end (no socket left to the GC)."""
    with httpx.Client(timeout=30) as client:
        yield client
