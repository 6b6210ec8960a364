"""Which provider kinds exist and which module speaks each.

Kinds are data: a kind names a protocol module and the provider fields it needs.
A kind whose module is not built answers 503 "provider kind not available".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from providers.base import StreamDecoder
from providers.sse import SSEDecoder

if TYPE_CHECKING:
    from providers.base import Adapter
    from providers.settings import ProviderSettings


@dataclass(frozen=True, slots=True)
class KindSpec:
    module: str
    required: tuple[str, ...] = ()
    # How the upstream frames a stream: a new decoder per stream (SSE for every kind so far).
    framing: Callable[[], StreamDecoder] = SSEDecoder


KINDS: dict[str, KindSpec] = {
    "openai": KindSpec("providers.openai", ("base_url",)),
    "azure": KindSpec("providers.openai", ("base_url", "api_version")),
    "openai-compatible": KindSpec("providers.openai", ("base_url",)),
    "anthropic": KindSpec("providers.anthropic", ("base_url",)),
    "anthropic-vertex": KindSpec("providers.anthropic", ("base_url", "project", "location")),
    "gemini": KindSpec("providers.gemini", ("base_url",)),
    "vertex": KindSpec("providers.gemini", ("base_url", "project", "location")),
}


def adapter_factory(kind: str) -> Callable[[ProviderSettings], Adapter] | None:
    """The module's `ADAPTERS[kind]`, or None where that module is not built yet."""
    spec = KINDS[kind]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name == spec.module:
            return None
        raise
    factories: dict[str, Callable[[ProviderSettings], Adapter]] = getattr(module, "ADAPTERS", {})
    return factories.get(kind)
