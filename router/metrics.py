"""Every Prometheus metric of the gateway, defined in one place (names are contract)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

# LLM calls take from tens of milliseconds to minutes; gateway overhead is sub-millisecond.
_REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

REQUESTS = Counter("llm_router_requests", "Client requests answered",
                   ["endpoint", "model", "provider", "key", "status"], registry=REGISTRY)
REQUEST_DURATION = Histogram("llm_router_request_duration_seconds", "Whole request time, stream included",
                             ["model", "provider"], buckets=_REQUEST_BUCKETS, registry=REGISTRY)
TIME_TO_FIRST_TOKEN = Histogram("llm_router_time_to_first_token_seconds", "Time until the first streamed chunk",
                                ["model", "provider"], buckets=_TTFT_BUCKETS, registry=REGISTRY)
OVERHEAD = Histogram("llm_router_overhead_seconds", "Time spent in the gateway itself, upstream waits excluded",
                     buckets=_OVERHEAD_BUCKETS, registry=REGISTRY)
TOKENS = Counter("llm_router_tokens", "Tokens metered", ["model", "key", "type"], registry=REGISTRY)
UPSTREAM_ERRORS = Counter("llm_router_upstream_errors", "Failed upstream attempts",
                          ["provider", "model", "status"], registry=REGISTRY)
RETRIES = Counter("llm_router_retries", "Upstream attempts retried", ["provider", "model"], registry=REGISTRY)
FALLBACKS = Counter("llm_router_fallbacks", "Requests served by a fallback model", ["model", "fallback"],
                    registry=REGISTRY)
RATE_LIMITED = Counter("llm_router_rate_limited", "Requests refused by a gateway limit", ["key", "model", "limit"],
                       registry=REGISTRY)
INFLIGHT = Gauge("llm_router_inflight_requests", "Client requests in progress", registry=REGISTRY)
STATE_DEGRADED = Gauge("llm_router_state_degraded", "1 while the shared state (Redis) is unreachable",
                       registry=REGISTRY)
CONFIG_RELOADS = Counter("llm_router_config_reloads", "Route table reloads", ["result"], registry=REGISTRY)
CONFIG_INFO = Gauge("llm_router_config_info", "The running route table's version", ["version"], registry=REGISTRY)
COOLDOWNS = Counter("llm_router_cooldowns", "Targets taken out for a cooldown", ["provider", "model"],
                    registry=REGISTRY)
COOLING_DOWN = Gauge("llm_router_targets_cooling_down", "1 while a target is cooling down", ["provider", "model"],
                     registry=REGISTRY)
