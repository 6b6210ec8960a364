"""routes.yaml -> a typed, frozen RouteTable, validated once at load.

Every mistake is collected (not just the first), each naming the file, the path
inside it (`models.gpt-4o.targets[0].provider`) and what is wrong. Unknown fields
are errors: a typo must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import orjson
import yaml

from providers.base import Operation
from providers.registry import KINDS
from providers.settings import ProviderSettings, Secret
from router.config.reader import Reader, UniqueKeyLoader, dataclass_fields, substitute

N = TypeVar("N")  # a section of numbers


class ConfigError(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class ModelType(enum.Enum):
    CHAT = "chat"
    EMBEDDING = "embedding"
    TRANSCRIPTION = "transcription"
    RERANK = "rerank"


# What a model of each type is asked to do: its targets' kinds must offer it.
MODEL_OPERATION: Mapping[ModelType, Operation] = MappingProxyType({
    ModelType.CHAT: Operation.CHAT, ModelType.EMBEDDING: Operation.EMBEDDINGS,
    ModelType.TRANSCRIPTION: Operation.TRANSCRIPTION, ModelType.RERANK: Operation.RERANK})


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 120.0  # a long prompt on a big model can take this long to start
    idle: float = 60.0  # between two chunks of a stream
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class Cooldown:
    failures: int = 3  # this many retryable failures ...
    window: float = 30.0  # ... within this many seconds ...
    duration: float = 30.0  # ... take the target out for this long, then probe it


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider account: what its translator needs (`settings`) and how the router calls it."""

    settings: ProviderSettings
    timeouts: Timeouts = Timeouts()
    max_retries: int = 2
    max_concurrency: int = 256  # upstream requests in flight to this provider
    max_queue: int = 512  # requests waiting for one of those slots; beyond: 503
    cooldown: Cooldown = Cooldown()

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def kind(self) -> str:
        return self.settings.kind


@dataclass(frozen=True, slots=True)
class MetaData:
    max_sequence_length: int = 0
    hidden_size: int = 0
    max_output_length: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    # Output tokens a request without max_tokens books against `tpm` at admission (settled
    # to the real usage after it); None: the next scope's, else router.state.limits' default.
    reserve_output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TargetConfig:
    provider: str
    model: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class ModelConfig:
    id: str
    type: ModelType
    endpoints: tuple[str, ...]
    meta_data: MetaData
    targets: tuple[TargetConfig, ...]
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    limits: Limits | None = None
    completions: bool = False
    owned_by: str = ""
    created: int = 0
    # Seconds until an answer has begun (retries, failovers and queueing included).
    deadline: float = 300.0
    # Request parameters removed before this model's upstream sees them (logged, and named
    # in x-llm-router-dropped-params), for parameters the model refuses.
    drop_params: tuple[str, ...] = ()
    # The vocabulary the upstream reads token ids in (`cl100k_base`, `o200k_base`): token-id
    # embedding inputs of that vocabulary are passed through; None: decoded to text first.
    tokenizer: str | None = None


@dataclass(frozen=True, slots=True)
class KeyConfig:
    name: str
    key_sha256: bytes = field(repr=False)
    models: frozenset[str] | None  # None: every model ("*")
    limits: Limits | None = None
    model_limits: Mapping[str, Limits] = field(default_factory=lambda: MappingProxyType({}))

    def allows(self, model_id: str) -> bool:
        return self.models is None or model_id in self.models


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Bounds on everything a client controls."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_messages: int = 2048
    max_content_parts: int = 256
    max_tools: int = 256
    max_image_bytes: int = 20 * 1024 * 1024
    max_model_id_length: int = 256
    max_json_depth: int = 64
    max_file_bytes: int = 25 * 1024 * 1024  # OpenAI's own transcription cap
    max_header_bytes: int = 8190


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """How long a client connection may keep the gateway waiting, in seconds."""

    header: float = 10.0  # from connecting, or from a request's first byte, to its complete headers
    body_idle: float = 30.0  # without a byte while a request body is still owed
    keep_alive: float = 75.0  # idle between two requests


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    shutdown_grace: float = 30.0
    request_limits: RequestLimits = RequestLimits()
    # Peers whose X-Forwarded-For is believed (the Ingress); empty: the peer is the client.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    client_timeouts: ClientTimeouts = ClientTimeouts()
    max_connections: int = 4096  # open client connections per process; idle ones make room for new ones


class FailurePolicy(enum.Enum):
    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"


@dataclass(frozen=True, slots=True)
class StateConfig:
    redis_url: Secret | None = None  # a URL may carry a password
    key_prefix: str = "llmr:"
    socket_timeout: float = 0.25
    on_failure: FailurePolicy = FailurePolicy.FAIL_OPEN
    expected_replicas: int = 1
    spool_path: str = "var/usage-spool.jsonl"
    cluster: bool = False  # redis_url names one node of a Redis Cluster
    responses_retention: float = 30 * 86400.0  # seconds a stored Responses API response is kept
    responses_max_stored: int = 10_000  # stored responses kept in-process (no Redis), oldest dropped first


@dataclass(frozen=True, slots=True)
class AdminConfig:
    key: Secret | None = None


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    debug_content: bool = False  # log prompts and completions: never in production


@dataclass(frozen=True, slots=True)
class RouteTable:
    path: str
    version: str
    server: ServerConfig
    state: StateConfig
    admin: AdminConfig
    logging: LoggingConfig
    providers: Mapping[str, ProviderConfig]
    models: Mapping[str, ModelConfig]
    keys: tuple[KeyConfig, ...]
    keys_by_digest: Mapping[bytes, KeyConfig] = field(repr=False)


# --- the sections ----------------------------------------------------------------


def _secret(r: Reader, node: dict[str, Any], key: str, path: str) -> Secret | None:
    value = r.string(node, key, path)
    return Secret(value) if value else None


def _numbers(r: Reader, node: Any, path: str, section: type[N], kind: Callable[[Any], Any], minimum: float) -> N:
    """A section whose fields are all numbers of one kind: each checked, the missing ones
    left at the section's defaults."""
    node = r.mapping(node, path, dataclass_fields(section))
    defaults = section()
    return section(**{f: r.number(node, f, path, getattr(defaults, f), kind, minimum)
                      for f in dataclass_fields(section)})


def _read_cooldown(r: Reader, node: Any, path: str) -> Cooldown:
    node = r.mapping(node, path, dataclass_fields(Cooldown))
    d = Cooldown()
    return Cooldown(
        failures=r.number(node, "failures", path, d.failures, int, 1),
        window=r.number(node, "window", path, d.window, float, 0.001),
        duration=r.number(node, "duration", path, d.duration, float, 0),
    )


def _read_limits(r: Reader, node: Any, path: str) -> Limits | None:
    if node is None:
        return None
    return _numbers(r, node, path, Limits, int, 1)


_SETTINGS_FIELDS = dataclass_fields(ProviderSettings) - {"name", "simulated"}
_PROVIDER_FIELDS = _SETTINGS_FIELDS | (dataclass_fields(ProviderConfig) - {"settings"})


_BETA_NAME = re.compile(r"^(\*|[a-z0-9][a-z0-9.-]{0,99})$")


def _read_anthropic_beta(r: Reader, node: dict[str, Any], path: str, kind: str) -> tuple[str, ...]:
    """The `anthropic-beta` features a Messages pass-through may forward to this provider."""
    names = r.string_list(node, "anthropic_beta", path)
    if names is None:
        return ()
    if KINDS[kind].protocol != "anthropic":
        r.error(f"{path}.anthropic_beta", f"only for providers that speak the Anthropic API, not kind '{kind}'")
    for name in names:
        if not _BETA_NAME.match(name):
            r.error(f"{path}.anthropic_beta", f"'{name[:100]}' is not a beta feature name (e.g. "
                                              "interleaved-thinking-2025-05-14) or '*'")
    return names


def _read_provider(r: Reader, name: str, node: Any) -> ProviderConfig | None:
    path = f"providers.{name}"
    node = r.mapping(node, path, _PROVIDER_FIELDS, ("kind",))
    kind = r.string(node, "kind", path)
    if kind is None:
        return None
    if kind not in KINDS:
        r.error(f"{path}.kind", f"unknown kind '{kind}' (known: {', '.join(sorted(KINDS))})")
        return None
    for needed in KINDS[kind].required:
        if node.get(needed) in (None, "") and needed != "kind":
            r.error(f"{path}.{needed}", f"required for kind '{kind}'")
    base_url = (r.string(node, "base_url", path, "") or "").rstrip("/")
    if base_url and not re.match(r"^https?://[^/\s]+", base_url):
        r.error(f"{path}.base_url", f"expected an http(s) URL, got '{base_url}'")
    d = ProviderSettings(name=name, kind=kind)
    settings = ProviderSettings(
        name=name,
        kind=kind,
        base_url=base_url,
        api_key=_secret(r, node, "api_key", path),
        api_version=r.string(node, "api_version", path),
        anthropic_version=r.string(node, "anthropic_version", path, d.anthropic_version) or d.anthropic_version,
        anthropic_beta=_read_anthropic_beta(r, node, path, kind),
        project=r.string(node, "project", path),
        location=r.string(node, "location", path),
        token_file=r.string(node, "token_file", path),
        token_command=r.string(node, "token_command", path),
        responses_api=r.boolean(node, "responses_api", path, False),
    )
    if settings.responses_api and not KINDS[kind].responses_api:
        r.error(f"{path}.responses_api", f"a provider of kind '{kind}' does not serve the Responses API")
    p = ProviderConfig(settings)
    return ProviderConfig(
        settings=settings,
        timeouts=_numbers(r, node.get("timeouts"), f"{path}.timeouts", Timeouts, float, 0.001),
        max_retries=r.number(node, "max_retries", path, p.max_retries, int, 0),
        max_concurrency=r.number(node, "max_concurrency", path, p.max_concurrency, int, 1),
        max_queue=r.number(node, "max_queue", path, p.max_queue, int, 0),
        cooldown=_read_cooldown(r, node.get("cooldown"), f"{path}.cooldown"),
    )


_MODEL_FIELDS = {"type", "endpoints", "meta_data", "targets", "fallbacks", "context_window_fallbacks",
                 "limits", "completions", "owned_by", "created", "deadline", "drop_params", "tokenizer"}
# What a request cannot do without: never droppable.
_UNDROPPABLE = {"model", "messages", "input", "prompt", "stream", "file"}
TOKENIZERS = ("cl100k_base", "o200k_base")  # the token-id vocabularies clients send (tiktoken's)
_ENDPOINT = re.compile(r"^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_RESERVED_ENDPOINTS = {"/admin", "/healthz", "/readyz", "/metrics", "/openapi.json"}


def _read_model(r: Reader, model_id: str, node: Any, providers: set[str]) -> ModelConfig | None:
    path = f"models.{model_id}"
    node = r.mapping(node, path, _MODEL_FIELDS, ("targets",))
    type_name = r.string(node, "type", path, "chat")
    try:
        model_type = ModelType(type_name)
    except ValueError:
        r.error(f"{path}.type", f"unknown type '{type_name}' (chat, embedding, transcription or rerank)")
        model_type = ModelType.CHAT
    endpoints = r.string_list(node, "endpoints", path) or ("/v1", "/v2")
    for i, ep in enumerate(endpoints):
        if not _ENDPOINT.match(ep) or ep in _RESERVED_ENDPOINTS:
            r.error(f"{path}.endpoints[{i}]", f"'{ep}' is not a usable path prefix like /v1")
    meta = _numbers(r, node.get("meta_data"), f"{path}.meta_data", MetaData, int, 0)
    targets: list[TargetConfig] = []
    raw_targets = node.get("targets")
    if raw_targets is not None and (not isinstance(raw_targets, list) or not raw_targets):
        r.error(f"{path}.targets", "expected a non-empty list of {provider, model, weight}")
        raw_targets = []
    for i, t in enumerate(raw_targets or []):
        tpath = f"{path}.targets[{i}]"
        t = r.mapping(t, tpath, {"provider", "model", "weight"}, ("provider", "model"))
        provider = r.string(t, "provider", tpath)
        upstream_model = r.string(t, "model", tpath)
        if provider and provider not in providers:
            r.error(f"{tpath}.provider", f"unknown provider '{provider}'")
        if provider and upstream_model:
            targets.append(TargetConfig(provider, upstream_model, r.number(t, "weight", tpath, 1, int, 1)))
    tokenizer = r.string(node, "tokenizer", path)
    if tokenizer is not None and tokenizer not in TOKENIZERS:
        r.error(f"{path}.tokenizer", f"unknown tokenizer '{tokenizer}' (known: {', '.join(TOKENIZERS)})")
    return ModelConfig(
        id=model_id,
        type=model_type,
        endpoints=endpoints,
        meta_data=meta,
        targets=tuple(targets),
        fallbacks=r.string_list(node, "fallbacks", path) or (),
        context_window_fallbacks=r.string_list(node, "context_window_fallbacks", path) or (),
        limits=_read_limits(r, node.get("limits"), f"{path}.limits"),
        completions=r.boolean(node, "completions", path, False),
        owned_by=r.string(node, "owned_by", path, "") or "",
        created=r.number(node, "created", path, 0, int, 0),
        deadline=r.number(node, "deadline", path, 300.0, float, 0.001),
        drop_params=_drop_params(r, node, path),
        tokenizer=tokenizer,
    )


def _drop_params(r: Reader, node: dict[str, Any], path: str) -> tuple[str, ...]:
    names = r.string_list(node, "drop_params", path) or ()
    for i, name in enumerate(names):
        if name in _UNDROPPABLE or not re.fullmatch(r"[a-z_]{1,64}", name):
            r.error(f"{path}.drop_params[{i}]", f"'{name}' is not a request parameter that can be dropped")
    return tuple(dict.fromkeys(names))


def _read_key(r: Reader, i: int, node: Any, models: Mapping[str, ModelConfig]) -> KeyConfig | None:
    path = f"keys[{i}]"
    node = r.mapping(node, path, {"name", "key", "key_sha256", "models", "limits", "model_limits"}, ("name",))
    name = r.string(node, "name", path)
    key = r.string(node, "key", path)
    digest_hex = r.string(node, "key_sha256", path)
    digest: bytes | None = None
    if key and digest_hex:
        r.error(path, "give either key or key_sha256, not both")
    elif key:
        digest = hashlib.sha256(key.encode()).digest()
    elif digest_hex:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", digest_hex):
            r.error(f"{path}.key_sha256", "expected 64 hex digits")
        else:
            digest = bytes.fromhex(digest_hex)
    else:
        r.error(f"{path}.key", "required field is missing (key or key_sha256)")
    model_list = r.string_list(node, "models", path)
    allowed: frozenset[str] | None = frozenset()
    if model_list is None:
        r.error(f"{path}.models", "required field is missing (a list of model ids, or [\"*\"])")
    elif "*" in model_list:
        allowed = None
    else:
        for j, m in enumerate(model_list):
            if m not in models:
                r.error(f"{path}.models[{j}]", f"unknown model '{m}'")
        allowed = frozenset(model_list)
    per_model: dict[str, Limits] = {}
    ml_node = r.mapping(node.get("model_limits"), f"{path}.model_limits", set(models))
    for m, lim in ml_node.items():
        parsed = _read_limits(r, lim, f"{path}.model_limits.{m}")
        if parsed:
            per_model[str(m)] = parsed
    if name is None or digest is None:
        return None
    return KeyConfig(name=name, key_sha256=digest, models=allowed,
                     limits=_read_limits(r, node.get("limits"), f"{path}.limits"),
                     model_limits=MappingProxyType(per_model))


def _read_server(r: Reader, node: Any) -> ServerConfig:
    node = r.mapping(node, "server", dataclass_fields(ServerConfig))
    d = ServerConfig()
    limits = _numbers(r, node.get("request_limits"), "server.request_limits", RequestLimits, int, 1)
    client_timeouts = _numbers(r, node.get("client_timeouts"), "server.client_timeouts", ClientTimeouts, float,
                               0.001)
    return ServerConfig(
        host=r.string(node, "host", "server", d.host) or d.host,
        port=r.number(node, "port", "server", d.port, int, 0),
        shutdown_grace=r.number(node, "shutdown_grace", "server", d.shutdown_grace, float, 0),
        request_limits=limits,
        trusted_proxies=_read_networks(r, node, "trusted_proxies", "server"),
        client_timeouts=client_timeouts,
        max_connections=r.number(node, "max_connections", "server", d.max_connections, int, 1),
    )


def _read_networks(r: Reader, node: dict[str, Any], key: str,
                   path: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for i, text in enumerate(r.string_list(node, key, path) or ()):
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as exc:
            r.error(f"{path}.{key}[{i}]", f"expected an address or a CIDR network such as 10.0.0.0/8 ({exc})")
    return tuple(networks)


def _read_state(r: Reader, node: Any) -> StateConfig:
    node = r.mapping(node, "state", dataclass_fields(StateConfig))
    d = StateConfig()
    policy_name = r.string(node, "on_failure", "state", d.on_failure.value)
    try:
        policy = FailurePolicy(policy_name)
    except ValueError:
        r.error("state.on_failure", f"expected fail_open or fail_closed, got '{policy_name}'")
        policy = d.on_failure
    url = r.string(node, "redis_url", "state")
    if url and not re.match(r"^(redis|rediss|unix)://", url):
        r.error("state.redis_url", "expected a redis://, rediss:// or unix:// URL")
    return StateConfig(
        redis_url=Secret(url) if url else None,
        key_prefix=r.string(node, "key_prefix", "state", d.key_prefix) or d.key_prefix,
        socket_timeout=r.number(node, "socket_timeout", "state", d.socket_timeout, float, 0.001),
        on_failure=policy,
        expected_replicas=r.number(node, "expected_replicas", "state", d.expected_replicas, int, 1),
        spool_path=r.string(node, "spool_path", "state", d.spool_path) or d.spool_path,
        cluster=r.boolean(node, "cluster", "state", d.cluster),
        responses_retention=_duration(r, node, "responses_retention", d.responses_retention),
        responses_max_stored=r.number(node, "responses_max_stored", "state", d.responses_max_stored, int, 1),
    )


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(r: Reader, node: dict[str, Any], key: str, default: float) -> float:
    """Seconds, or a number with a unit: `90s`, `30m`, `12h`, `30d`."""
    value = node.get(key)
    if isinstance(value, str) and (m := re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", value.strip())):
        return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if isinstance(value, str):
        r.error(f"state.{key}", f"expected seconds or a duration such as 30d, 12h, 30m, got '{value}'")
        return default
    return r.number(node, key, "state", default, float, 1)


def _check_models(r: Reader, models: Mapping[str, ModelConfig], providers: Mapping[str, ProviderConfig]) -> None:
    """What a model can only be checked against the others for: fallbacks, and targets whose kind serves its type."""
    for m in models.values():
        for field_name in ("fallbacks", "context_window_fallbacks"):
            for j, fb in enumerate(getattr(m, field_name)):
                if fb not in models:
                    r.error(f"models.{m.id}.{field_name}[{j}]", f"unknown model '{fb}'")
                elif fb == m.id:
                    r.error(f"models.{m.id}.{field_name}[{j}]", "a model cannot fall back to itself")
        if m.completions and m.type is not ModelType.CHAT:
            r.error(f"models.{m.id}.completions", "only chat models can serve raw completions")
        for j, target in enumerate(m.targets):
            provider = providers.get(target.provider)
            if provider and MODEL_OPERATION[m.type] not in KINDS[provider.kind].operations:
                r.error(f"models.{m.id}.targets[{j}].provider", f"a {provider.kind} provider does not serve "
                                                               f"{m.type.value} models")


def parse(data: Any, file: str = "routes.yaml") -> RouteTable:
    """Validate an already-parsed YAML document; raise ConfigError with every mistake."""
    errors: list[str] = []
    data = substitute(data, "", errors, file)
    r = Reader(file)
    r.errors.extend(errors)
    top = r.mapping(data, "", {"server", "state", "admin", "logging", "providers", "models", "keys"},
                    ("providers", "models"))
    server = _read_server(r, top.get("server"))
    state = _read_state(r, top.get("state"))
    admin_node = r.mapping(top.get("admin"), "admin", {"key"})
    admin = AdminConfig(key=_secret(r, admin_node, "key", "admin"))
    log_node = r.mapping(top.get("logging"), "logging", {"level", "debug_content"})
    level = (r.string(log_node, "level", "logging", "INFO") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        r.error("logging.level", f"expected DEBUG, INFO, WARNING or ERROR, got '{level}'")
    logging_cfg = LoggingConfig(level=level, debug_content=r.boolean(log_node, "debug_content", "logging", False))

    providers: dict[str, ProviderConfig] = {}
    raw_providers = r.mapping(top.get("providers"), "providers", set(top.get("providers") or {}))
    for name, node in raw_providers.items():
        p = _read_provider(r, str(name), node)
        if p:
            providers[str(name)] = p
    declared = {str(name) for name in raw_providers}  # a provider with a bad field is still declared

    models: dict[str, ModelConfig] = {}
    raw_models = top.get("models") or {}
    if isinstance(raw_models, list):
        r.error("models", "expected a mapping of model id to model")
        raw_models = {}
    for model_id, node in r.mapping(raw_models, "models", set(raw_models)).items():
        m = _read_model(r, str(model_id), node, declared)
        if m:
            models[str(model_id)] = m
    _check_models(r, models, providers)

    keys: list[KeyConfig] = []
    raw_keys = top.get("keys") or []
    if not isinstance(raw_keys, list):
        r.error("keys", "expected a list of keys")
        raw_keys = []
    seen_names: dict[str, int] = {}
    by_digest: dict[bytes, KeyConfig] = {}
    for i, node in enumerate(raw_keys):
        k = _read_key(r, i, node, models)
        if k is None:
            continue
        if k.name in seen_names:
            r.error(f"keys[{i}].name", f"duplicate key name '{k.name}' (also keys[{seen_names[k.name]}])")
        if k.key_sha256 in by_digest:
            r.error(f"keys[{i}].key", f"the same key is already given to '{by_digest[k.key_sha256].name}'")
        if admin.key and hashlib.sha256(admin.key.get().encode()).digest() == k.key_sha256:
            r.error(f"keys[{i}].key", "a client key must differ from the admin key")
        seen_names[k.name] = i
        by_digest[k.key_sha256] = k
        keys.append(k)

    if r.errors:
        raise ConfigError(r.errors)
    version = hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:12]
    return RouteTable(
        path=file,
        version=version,
        server=server,
        state=state,
        admin=admin,
        logging=logging_cfg,
        providers=MappingProxyType(providers),
        models=MappingProxyType(models),
        keys=tuple(keys),
        keys_by_digest=MappingProxyType(by_digest),
    )


def load(path: str | Path) -> RouteTable:
    """Read and validate a route table file; raise ConfigError naming every mistake."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{file}: not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: invalid YAML: {exc}"]) from None
    return parse(data, file)


def replace_providers(table: RouteTable, providers: Mapping[str, ProviderConfig]) -> RouteTable:
    """The same table with other provider accounts (used by `demo`)."""
    return dataclasses.replace(table, providers=MappingProxyType(dict(providers)))
