"""What the bench measures (scenarios) and through what (targets): data only.

A target says how to reach each protocol through it (URL, headers, model) or that
it cannot; a scenario says which protocol, body, streaming and concurrency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CLIENT_KEY = "sk-bench-client-key"
UPSTREAM_KEY = "sk-upstream-bench"
SYSTEM = "You are a terse assistant."
PROMPT = "Say hello to the benchmark in one short sentence, then count the chunks."
EMBED_INPUT = "The food was delicious and the waiter was friendly; we will come back next week."


@dataclass(frozen=True)
class Scenario:
    name: str
    protocol: str  # what the gateway translates to: openai | anthropic | gemini
    kind: str  # chat | stream | embeddings
    concurrency: int
    title: str

    @property
    def streamed(self) -> bool:
        return self.kind == "stream"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("chat-c1", "openai", "chat", 1, "Non-streamed chat, concurrency 1"),
    Scenario("chat-c16", "openai", "chat", 16, "Non-streamed chat, concurrency 16"),
    Scenario("chat-c64", "openai", "chat", 64, "Non-streamed chat, concurrency 64"),
    Scenario("stream-c1", "openai", "stream", 1, "Stream of 50 chunks, concurrency 1"),
    Scenario("stream-c16", "openai", "stream", 16, "Stream of 50 chunks, concurrency 16"),
    Scenario("embeddings-c16", "openai", "embeddings", 16, "Embeddings (1536 floats), concurrency 16"),
    Scenario("anthropic-chat-c16", "anthropic", "chat", 16, "Chat translated to Anthropic, concurrency 16"),
    Scenario("anthropic-stream-c16", "anthropic", "stream", 16,
             "Stream of 50 chunks translated from Anthropic, concurrency 16"),
    Scenario("gemini-chat-c16", "gemini", "chat", 16, "Chat translated to Gemini, concurrency 16"),
    Scenario("gemini-stream-c16", "gemini", "stream", 16,
             "Stream of 50 chunks translated from Gemini, concurrency 16"),
)


@dataclass(frozen=True)
class Endpoint:
    """How one request of a scenario goes through one target."""

    url: str
    headers: dict[str, str]
    body: dict[str, object]
    stream_format: str = "openai"  # what the client parses: openai | anthropic | gemini


def openai_body(model: str, kind: str) -> dict[str, object]:
    if kind == "embeddings":
        return {"model": model, "input": EMBED_INPUT}
    body: dict[str, object] = {
        "model": model, "max_tokens": 64, "temperature": 0.2,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
    }
    if kind == "stream":
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    is_gateway: bool = True
    # per protocol: (model id, extra headers); a protocol missing here is not served
    models: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    client_key: str = CLIENT_KEY
    embed_model: str = "bench-embed"
    only: tuple[str, ...] = ()  # when set, the scenarios this target is measured on

    def endpoint(self, s: Scenario) -> Endpoint | None:
        if s.protocol not in self.models or (self.only and s.name not in self.only):
            return None
        path = "/v1/embeddings" if s.kind == "embeddings" else "/v1/chat/completions"
        headers = {"Authorization": f"Bearer {self.client_key}", **self.headers.get(s.protocol, {})}
        model = self.embed_model if s.kind == "embeddings" else self.models[s.protocol]
        return Endpoint(f"http://127.0.0.1:{self.port}{path}", headers, openai_body(model, s.kind))


@dataclass(frozen=True)
class DirectTarget(Target):
    """The fake upstream itself, each protocol in its own wire format."""

    def endpoint(self, s: Scenario) -> Endpoint | None:
        base = f"http://127.0.0.1:{self.port}"
        auth = {"Authorization": f"Bearer {UPSTREAM_KEY}"}
        if s.protocol == "openai":
            model = "fake-embed" if s.kind == "embeddings" else "fake-chat"
            path = "/v1/embeddings" if s.kind == "embeddings" else "/v1/chat/completions"
            return Endpoint(base + path, auth, openai_body(model, s.kind))
        if s.protocol == "anthropic":
            body: dict[str, object] = {"model": "claude-bench", "max_tokens": 64, "temperature": 0.2, "system": SYSTEM,
                                       "messages": [{"role": "user", "content": PROMPT}], "stream": s.streamed}
            headers = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
            return Endpoint(base + "/v1/messages", headers, body, "anthropic")
        action = "streamGenerateContent?alt=sse" if s.streamed else "generateContent"
        body = {"systemInstruction": {"parts": [{"text": SYSTEM}]},
                "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
                "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2}}
        return Endpoint(f"{base}/v1beta/models/gemini-bench:{action}", {"x-goog-api-key": UPSTREAM_KEY}, body,
                        "gemini")


def portkey_headers(upstream_port: int) -> dict[str, dict[str, str]]:
    """Portkey routes by headers: the provider, and a custom host for its base URL."""
    up = f"http://127.0.0.1:{upstream_port}"
    return {
        "openai": {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{up}/v1"},
        "anthropic": {"x-portkey-provider": "anthropic", "x-portkey-custom-host": f"{up}/v1"},
        "gemini": {"x-portkey-provider": "google", "x-portkey-custom-host": up},
    }


GATEWAY_MODELS = {"openai": "bench-chat", "anthropic": "bench-claude", "gemini": "bench-gemini"}
PORTKEY_MODELS = {"openai": "fake-chat", "anthropic": "claude-bench", "gemini": "gemini-bench"}


def targets(ports: dict[str, int]) -> dict[str, Target]:
    up = ports["upstream"]
    return {
        "direct": DirectTarget("direct", up, is_gateway=False, models=dict(GATEWAY_MODELS)),
        "floor": Target("floor", ports["floor"], models={"openai": "fake-chat"}),
        "llm-router": Target("llm-router", ports["llm-router"], models=dict(GATEWAY_MODELS)),
        # the same gateway with Redis limits and metering on (non-streamed chat only)
        "llm-router-redis": Target("llm-router-redis", ports["llm-router"], models=dict(GATEWAY_MODELS),
                                   only=("chat-c1", "chat-c64")),
        "litellm": Target("litellm", ports["litellm"], models=dict(GATEWAY_MODELS)),
        "portkey": Target("portkey", ports["portkey"], models=dict(PORTKEY_MODELS), headers=portkey_headers(up),
                          client_key=UPSTREAM_KEY, embed_model="fake-embed"),
    }
