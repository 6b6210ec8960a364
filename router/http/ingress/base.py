"""What an ingress protocol offers the handlers."""

from __future__ import annotations

from typing import Protocol

from multidict import CIMultiDictProxy

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

    def with_source(self, request: ApiRequest, body: JSON, raw: bytes, headers: CIMultiDictProxy[str]) -> ApiRequest:
        """The request with the client's own body (`body`, `raw`) beside the canonical one, for an
        upstream that speaks this protocol itself (ApiRequest.source); the request as it is for
        the canonical protocol."""
        ...

    def answer(self, body: bytes, request: ApiRequest) -> bytes:
        """A whole canonical answer as this protocol's answer body."""
        ...

    def client_stream(self, request: ApiRequest) -> ClientStream:
        """A new writer of this protocol's stream, for one streamed answer."""
        ...
