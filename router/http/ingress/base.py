"""What an ingress protocol offers the handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from providers.base import JSON, ApiRequest
from router.errors import ErrorShape
from router.upstream.relay import ClientStream


class Ingress(Protocol):
    """One client-facing protocol, as a pure two-way translation around the canonical
    OpenAI form. `protocol` names the wire protocol it is: an upstream that speaks the same
    (the registry's `KindSpec.protocol`) can take the client's request as it came."""

    name: str
    protocol: str
    errors: ErrorShape

    def to_canonical(self, body: JSON) -> JSON:
        """The client's request body as the canonical request body (raises GatewayError 400)."""
        ...

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        """A whole canonical answer as this protocol's answer body."""
        ...

    def client_stream(self, request: ApiRequest) -> ClientStream:
        """A new writer of this protocol's stream, for one streamed answer."""
        ...


@dataclass(frozen=True, slots=True)
class Source:
    """A request the handler read itself, in a client protocol an upstream may speak natively."""

    body: JSON  # the client's body, as a native upstream takes it
    protocol: str
    native_only: tuple[str, str] | None = None  # (param, what) only a native upstream can serve
    raw: bytes = b""  # the body as it came, byte for byte, where the native upstream takes exactly that
    features: tuple[str, ...] = ()  # the protocol's optional features asked for (Anthropic's `anthropic-beta`)
