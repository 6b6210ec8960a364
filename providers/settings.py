"""A provider account as the translators see it: where it is, how to authenticate, and
the fields of its flavour. The route table holds one per provider (with the router's own
transport policy beside it); nothing here knows about the router."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential: `repr`, `str` and logs show [REDACTED]."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret([REDACTED])"

    def __str__(self) -> str:
        return "[REDACTED]"

    def get(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    name: str
    kind: str
    base_url: str = ""
    api_key: Secret | None = None
    api_version: str | None = None  # azure
    anthropic_version: str = "2023-06-01"
    # The `anthropic-beta` features a client's Messages request may pass on to this provider
    # ("*": any); the others are left out of the pass-through.
    anthropic_beta: tuple[str, ...] = ()
    project: str | None = None  # vertex
    location: str | None = None  # vertex
    token_file: str | None = None  # vertex: a file holding a bearer token
    token_command: str | None = None  # vertex: a command printing a bearer token
    # The upstream serves OpenAI's Responses API itself (OpenAI, Azure): a Responses request
    # passes through to it with only the model rewritten, instead of being translated to chat.
    responses_api: bool = False
    simulated: bool = False  # a bundled simulator (`llm-router demo`): no real credentials are used
