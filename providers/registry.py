"""Every provider kind, as data: which module translates it, what a table must give it,
how its streams are framed, which simulator speaks it and what it can do.

Config validation, the dispatcher, `llm-router demo`, the tests and the docs all read
this one table. Adding a kind is its protocol module, its simulator and one entry here.
A kind whose module is not built answers 503 "provider kind not available".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from providers.base import Adapter, Operation, StreamDecoder
from providers.settings import ProviderSettings
from providers.sse import SSEDecoder

CHAT_ONLY = frozenset({Operation.CHAT})


@dataclass(frozen=True, slots=True, kw_only=True)
class KindSpec:
    module: str  # the protocol module; its ADAPTERS[kind] builds an adapter from ProviderSettings
    protocol: str  # the wire protocol spoken: an ingress of the same protocol may pass the client's body through
    required: tuple[str, ...] = ("base_url",)  # provider fields the route table must give
    framing: Callable[[], StreamDecoder] = SSEDecoder  # a new stream decoder per upstream stream
    stream_content_type: str = "text/event-stream"  # what a stream answer must be; anything else is a 502
    simulator: str  # the module whose create_app() speaks this protocol on loopback
    simulator_path: str = ""  # what the kind's SDKs append to the simulator's root URL as base_url
    operations: frozenset[Operation] = CHAT_ONLY
    tools: bool = True  # function calling
    vision: bool = True  # image parts
    responses_api: bool = False  # may serve OpenAI's Responses API itself (`responses_api: true` in the table)
    # An example account (docs, tests): its provider fields beside `kind` and `base_url`, and
    # an upstream chat model it serves.
    example: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    example_model: str


_VERTEX = MappingProxyType({"project": "my-project", "location": "europe-west4"})

_OPENAI_SIM, _ANTHROPIC_SIM, _GEMINI_SIM = "providers.simulators.openai", "providers.simulators.anthropic", \
    "providers.simulators.gemini"
_VERTEX_FIELDS = ("base_url", "project", "location")
_EMBEDS = frozenset({Operation.CHAT, Operation.EMBEDDINGS})

KINDS: Mapping[str, KindSpec] = MappingProxyType({
    "openai": KindSpec(
        module="providers.openai", protocol="openai", simulator=_OPENAI_SIM, simulator_path="/v1",
        operations=frozenset(Operation), responses_api=True, example_model="gpt-4o-mini-2024-07-18"),
    "azure": KindSpec(
        module="providers.openai", protocol="openai", required=("base_url", "api_version"), simulator=_OPENAI_SIM,
        operations=frozenset(Operation), responses_api=True, example=MappingProxyType({"api_version": "2024-10-21"}),
        example_model="gpt-4o-deployment"),
    "openai-compatible": KindSpec(
        module="providers.openai", protocol="openai", simulator=_OPENAI_SIM, simulator_path="/v1",
        operations=frozenset(Operation), example_model="meta-llama/Llama-3.1-70B-Instruct"),
    "anthropic": KindSpec(
        module="providers.anthropic", protocol="anthropic", simulator=_ANTHROPIC_SIM,
        example_model="claude-sonnet-4-5-20250929"),
    "anthropic-vertex": KindSpec(
        module="providers.anthropic", protocol="anthropic", required=_VERTEX_FIELDS, simulator=_ANTHROPIC_SIM,
        example=_VERTEX, example_model="claude-sonnet-4-5@20250929"),
    "gemini": KindSpec(
        module="providers.gemini", protocol="gemini", simulator=_GEMINI_SIM, operations=_EMBEDS,
        example_model="gemini-2.5-flash"),
    "vertex": KindSpec(
        module="providers.gemini", protocol="gemini", required=_VERTEX_FIELDS, simulator=_GEMINI_SIM,
        operations=_EMBEDS, example=_VERTEX, example_model="gemini-2.5-flash"),
})


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


RESPONSES_PROTOCOL = "openai-responses"


def speaks(settings: ProviderSettings, protocol: str) -> bool:
    """Whether the provider takes a request of this client protocol as it came (pass-through)."""
    if protocol == RESPONSES_PROTOCOL:
        return settings.responses_api
    return KINDS[settings.kind].protocol == protocol
