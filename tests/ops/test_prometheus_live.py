"""The dashboard's and the alert rules' queries against a real Prometheus server
(Debian's `prometheus` package), scraping a running gateway once a second after
some traffic: every panel query returns data, every alert expression evaluates.

Fails, never skips, where `prometheus` is not installed (.ci/run installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from providers.simulators.common import Fault
from tests.harness import ADMIN_KEY, Gateway, table_dict
from tests.ops.support import free_port, http
from tests.ops.test_deploy_files import (
    ALERTS,
    alert_rules,
    dashboard,
    dashboard_queries,
    grafana_to_promql,
    run_promtool,
)

KEY_LIMITED = "sk-team-limited-prom"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1 s scrape interval


def prometheus_binary() -> str:
    path = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if path is None:
        pytest.fail("prometheus not found: install Debian's prometheus package "
                    "(apt-get update && apt-get install -y prometheus); .ci/run does")
    return path


def _table() -> dict[str, Any]:
    keys = [*table_dict()["keys"], {"name": "team-limited", "key": KEY_LIMITED, "models": ["*"],
                                    "limits": {"rpm": 1}}]
    models = table_dict()["models"]
    models["gpt-4o"] = {**models["gpt-4o"], "fallbacks": ["gpt-4o-mini"]}
    return table_dict(keys=keys, models=models)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    routes = tmp_path_factory.mktemp("routes") / "routes.yaml"  # what /admin/reload reads
    routes.write_text(yaml.safe_dump(_table()), encoding="utf-8")
    with Gateway(_table(), file=str(routes)) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def prometheus(gw: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus server scraping the gateway every second; yields its base URL."""
    root = tmp_path_factory.mktemp("prometheus")
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "llm-router", "scrape_interval": "1s", "scrape_timeout": "1s",
                                  "static_configs": [{"targets": [f"127.0.0.1:{gw.port}"]}]}]}
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    with open(root / "prometheus.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([prometheus_binary(), f"--config.file={root / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _ready(url), 15, lambda: f"prometheus did not start:\n{(root / 'prometheus.log').read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _ready(url: str) -> bool:
    try:
        return http("GET", f"{url}/-/ready", timeout=1)[0] == 200
    except OSError:
        return False


def _until(check: Any, timeout: float, message: Any) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, message()
        time.sleep(0.25)


def query(url: str, expr: str) -> dict[str, Any]:
    status, _, body = http("GET", f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5)
    answer: dict[str, Any] = orjson.loads(body)
    assert status == 200 and answer["status"] == "success", f"{expr}: {answer}"
    data: dict[str, Any] = answer["data"]
    return data


def _traffic(gw: Gateway) -> None:
    """Successes, a stream, upstream errors, a 5xx, a fallback, a rate-limited request, a reload."""
    client = gw.client()
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    client.embeddings.create(model="jina-embeddings-v2-base-de", input="hello")
    gw.sim("openai").faults.append(Fault(status=400))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    # Every attempt at gpt-4o (azure deployments path) fails: it falls back to gpt-4o-mini.
    gw.sim("azure").faults.extend(Fault(status=503, path="/openai/deployments/") for _ in range(8))
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).model == "gpt-4o-mini"
    gw.sim("azure").faults.clear()
    gw.sim("anthropic").faults.extend(Fault(status=503) for _ in range(8))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="claude-3-5-sonnet", messages=HELLO)
    gw.sim("anthropic").faults.clear()
    limited = gw.client(KEY_LIMITED)
    limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    table = _table()
    table["models"]["gpt-4o-mini-copy"] = table["models"]["gpt-4o-mini"]
    Path(gw.file).write_text(yaml.safe_dump(table), encoding="utf-8")
    reloaded = http("POST", gw.url("/admin/reload"), headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert reloaded[0] == 200, reloaded


def test_every_dashboard_panel_query_returns_data_from_a_real_prometheus(gw: Gateway, prometheus: str) -> None:
    # Traffic after a first scrape, so that changes() and increase() see the counters move.
    _until(lambda: query(prometheus, 'up{job="llm-router"} == 1')["result"], 10, lambda: "no scrape of the gateway")
    _traffic(gw)
    queries = [(where, grafana_to_promql(expr, RATE_INTERVAL)) for where, expr in dashboard_queries(dashboard())]
    assert len(queries) >= 20
    pending = dict(queries)

    def all_answered() -> bool:
        for where, expr in list(pending.items()):
            if query(prometheus, expr)["result"]:
                del pending[where]
        return not pending

    _until(all_answered, 15, lambda: "panels without data:\n" + "\n".join(f"{w}: {e}" for w, e in pending.items()))
    assert query(prometheus, 'up{job="llm-router"}')["result"][0]["value"][1] == "1"


def test_every_alert_expression_evaluates_on_a_real_prometheus(gw: Gateway, prometheus: str) -> None:
    rules = alert_rules()
    assert rules
    for rule in rules:
        query(prometheus, rule["expr"])  # a parse or evaluation error fails here


def test_alert_rules_pass_promtool_check_rules() -> None:
    assert "SUCCESS" in run_promtool("check", "rules", str(ALERTS))
