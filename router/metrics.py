"""Every Prometheus metric of the gateway, defined in one place (names are contract).

With `serve --workers N` every worker writes its values to memory-mapped files in
the directory `PROMETHEUS_MULTIPROC_DIR` names (a fresh one per server start, made
by the supervising process before it starts the workers), and `/metrics` on any
worker answers for all of them through `MultiProcessCollector`: one scrape sees the
whole instance, whichever worker the kernel hands the connection to. The mode is
picked when this module is imported, so the directory must be in the environment
before that (the supervisor sets it before it spawns the workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from router.config.schema import RouteTable

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

_DEFINED = CollectorRegistry(auto_describe=True)

# LLM calls take from tens of milliseconds to minutes; gateway overhead is sub-millisecond.
_REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600)
_TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)

REQUESTS = Counter("llm_router_requests", "Client requests answered",
                   ["endpoint", "model", "provider", "key", "status"], registry=_DEFINED)
REQUEST_DURATION = Histogram("llm_router_request_duration_seconds", "Whole request time, stream included",
                             ["model", "provider"], buckets=_REQUEST_BUCKETS, registry=_DEFINED)
TIME_TO_FIRST_TOKEN = Histogram("llm_router_time_to_first_token_seconds", "Time until the first streamed chunk",
                                ["model", "provider"], buckets=_TTFT_BUCKETS, registry=_DEFINED)
OVERHEAD = Histogram("llm_router_overhead_seconds", "Time spent in the gateway itself, upstream waits excluded",
                     buckets=_OVERHEAD_BUCKETS, registry=_DEFINED)
TOKENS = Counter("llm_router_tokens", "Tokens metered", ["model", "key", "type"], registry=_DEFINED)
UPSTREAM_ERRORS = Counter("llm_router_upstream_errors", "Failed upstream attempts",
                          ["provider", "model", "status"], registry=_DEFINED)
RETRIES = Counter("llm_router_retries", "Upstream attempts retried", ["provider", "model"], registry=_DEFINED)
FALLBACKS = Counter("llm_router_fallbacks", "Requests served by a fallback model", ["model", "fallback"],
                    registry=_DEFINED)
RATE_LIMITED = Counter("llm_router_rate_limited", "Requests refused by a gateway limit", ["key", "model", "limit"],
                       registry=_DEFINED)
# Gauges across workers: in-flight requests add up over the live workers; a flag is
# set when any live worker has it set. Dead workers' gauges are dropped
# (`mark_process_dead`), their counters kept (a counter never goes back).
INFLIGHT = Gauge("llm_router_inflight_requests", "Client requests in progress", registry=_DEFINED,
                 multiprocess_mode="livesum")
STATE_DEGRADED = Gauge("llm_router_state_degraded", "1 while the shared state (Redis) is unreachable",
                       registry=_DEFINED, multiprocess_mode="livemax")
USAGE_SPOOL_RECORDS = Gauge("llm_router_usage_spool_records", "Usage records waiting in the local spool for Redis",
                            registry=_DEFINED, multiprocess_mode="livemax")
USAGE_SPOOL_BYTES = Gauge("llm_router_usage_spool_bytes", "Bytes of the local usage spool", registry=_DEFINED,
                          multiprocess_mode="livemax")
CONFIG_RELOADS = Counter("llm_router_config_reloads", "Route table reloads", ["result"], registry=_DEFINED)
CONFIG_INFO = Gauge("llm_router_config_info", "The running route table's version", ["version"], registry=_DEFINED,
                    multiprocess_mode="livemax")
COOLDOWNS = Counter("llm_router_cooldowns", "Targets taken out for a cooldown", ["provider", "model"],
                    registry=_DEFINED)
COOLING_DOWN = Gauge("llm_router_targets_cooling_down", "1 while a target is cooling down", ["provider", "model"],
                     registry=_DEFINED, multiprocess_mode="livemax")

# Alerts compute increase() over these: a series must exist (at 0) before its first event.
for _result in ("success", "failure"):
    CONFIG_RELOADS.labels(_result)


class _ServedVersionsOnly(Collector):
    """All workers' values, without the table versions no worker serves any more.

    A value in a worker's file cannot be deleted, only set to 0; a version at 0 is one
    that worker has replaced, and `count by (version)` must not see it."""

    def __init__(self, inner: MultiProcessCollector) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        for family in self._inner.collect():  # type: ignore[no-untyped-call]
            if family.name == "llm_router_config_info":
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


def _exposed_registry() -> CollectorRegistry:
    if MULTIPROCESS_DIR is None:
        return _DEFINED
    registry = CollectorRegistry()
    collector = MultiProcessCollector(None, path=MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    registry.register(_ServedVersionsOnly(collector))
    return registry


# What /metrics exposes: this process's metrics, or every worker's.
REGISTRY = _exposed_registry()
_serving_version: list[str] = []  # the version this process serves, once a table is loaded


def table_loaded(table: RouteTable) -> None:
    """The process serves `table` from now on: show its version, and create at 0 the
    per-target series that panels and alerts compute rates of."""
    previous = _serving_version[0] if _serving_version else None
    if previous is not None and previous != table.version:
        if MULTIPROCESS_DIR is None:
            CONFIG_INFO.remove(previous)
        else:
            CONFIG_INFO.labels(previous).set(0)
    CONFIG_INFO.labels(table.version).set(1)
    _serving_version[:] = [table.version]
    for model in table.models.values():
        for target in model.targets:
            RETRIES.labels(target.provider, model.id)
            COOLDOWNS.labels(target.provider, model.id)
            COOLING_DOWN.labels(target.provider, model.id)
        for fallback in (*model.fallbacks, *model.context_window_fallbacks):
            FALLBACKS.labels(model.id, fallback)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def labelled(metric: Any, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: the per-request series (a bounded set: model ids of
    the table, key names, statuses) are looked up in one dict instead of built each time."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child
