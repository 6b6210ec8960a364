"""The files ops run, in deploy/, checked without a network.

Every YAML parses; the dashboard's and the alerts' queries use only the metric
names and labels of the contract (design.md, "Metrics") and are valid PromQL
(`promtool check rules`); every alert fires on synthetic series
(`promtool test rules deploy/prometheus/alerts.test.yml`); the Kubernetes
manifests agree with each other, with the image and with the route table.
promtool comes from Debian's `prometheus` package; these tests fail, never
skip, where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from router.config import schema as config
from router.server import SHUTDOWN_MARGIN
from router.state.redis_meter import CLOSE_TIMEOUT

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "llm-router.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
K8S = DEPLOY / "kubernetes"

# The contract: metric -> its labels (design.md "Metrics" and the ops brief).
CONTRACT: dict[str, frozenset[str]] = {
    "llm_router_requests_total": frozenset({"endpoint", "model", "provider", "key", "status"}),
    "llm_router_request_duration_seconds": frozenset({"model", "provider"}),
    "llm_router_time_to_first_token_seconds": frozenset({"model", "provider"}),
    "llm_router_overhead_seconds": frozenset(),
    "llm_router_tokens_total": frozenset({"model", "key", "type"}),
    "llm_router_upstream_errors_total": frozenset({"provider", "model", "status"}),
    "llm_router_retries_total": frozenset({"provider", "model"}),
    "llm_router_fallbacks_total": frozenset({"model", "fallback"}),
    "llm_router_rate_limited_total": frozenset({"key", "model", "limit"}),
    "llm_router_inflight_requests": frozenset(),
    "llm_router_state_degraded": frozenset(),
    "llm_router_usage_spool_records": frozenset(),
    "llm_router_usage_spool_bytes": frozenset(),
    "llm_router_config_reloads_total": frozenset({"result"}),
    "llm_router_cooldowns_total": frozenset({"provider", "model"}),
    "llm_router_targets_cooling_down": frozenset({"provider", "model"}),
    "llm_router_config_info": frozenset({"version"}),
}
HISTOGRAMS = {"llm_router_request_duration_seconds", "llm_router_time_to_first_token_seconds",
              "llm_router_overhead_seconds"}
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})  # added by Prometheus at scrape time


def _series_labels() -> dict[str, frozenset[str]]:
    """Every series name a query may select, with the labels it carries."""
    series = {name: labels for name, labels in CONTRACT.items() if name not in HISTOGRAMS}
    for name in HISTOGRAMS:
        series[f"{name}_bucket"] = CONTRACT[name] | {"le"}
        series[f"{name}_sum"] = CONTRACT[name]
        series[f"{name}_count"] = CONTRACT[name]
    return series


SERIES = _series_labels()
FUNCTIONS = {"sum", "min", "max", "avg", "count", "topk", "bottomk", "group", "rate", "irate", "increase",
             "changes", "delta", "histogram_quantile", "clamp_min", "clamp_max", "abs", "vector", "absent",
             "max_over_time", "min_over_time", "avg_over_time", "label_replace", "sort_desc", "round", "time"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "offset", "bool"}
_TOKEN = re.compile(r"""(?P<str>"(?:[^"\\]|\\.)*")|(?P<range>\[[^\]]*\])|(?P<matchers>\{[^}]*\})"""
                    r"""|(?P<dur>\d+(?:ms|s|m|h|d|w|y)\b)|(?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)"""
                    r"""|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<punct>\S)""")
_MATCHER = re.compile(r"""\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?""")
_GRAFANA_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def query_problems(expr: str, extra: dict[str, frozenset[str]] | None = None) -> list[str]:
    """What is wrong with a PromQL expression against the contract: unknown metrics,
    unknown functions, labels a metric does not carry. Syntax is promtool's job."""
    known = SERIES | (extra or {})
    tokens = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr)]
    problems: list[str] = []
    used_labels: set[str] = set()
    grouped: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "ident" and text in GROUPING and following[1] == "(":
            end = next(j for j in range(i + 2, len(tokens)) if tokens[j][1] == ")")
            grouped.update(t for k, t in tokens[i + 2:end] if k == "ident")
            i = end + 1
            continue
        if kind == "ident" and (following[1] == "(" or text in FUNCTIONS):  # `sum by (x) (...)` too
            if text not in FUNCTIONS:
                problems.append(f"unknown function {text}()")
        elif kind == "ident" and text not in KEYWORDS:
            if text not in known:
                problems.append(f"metric {text} is not in the contract")
            else:
                used_labels |= known[text]
                if following[0] == "matchers":
                    problems += [f"{text} has no label '{label}'"
                                 for label in _matcher_labels(following[1]) if label not in known[text] | TARGET_LABELS]
        i += 1
    problems += [f"grouping by '{label}', which no metric of the query carries"
                 for label in sorted(grouped - used_labels - TARGET_LABELS)]
    return problems


def _matcher_labels(matchers: str) -> list[str]:
    body = matchers.strip("{}")
    labels = [m.group(1) for m in _MATCHER.finditer(body)]
    assert _MATCHER.sub("", body).strip() == "", f"cannot read label matchers {matchers}"
    return labels


def grafana_to_promql(expr: str, rate_interval: str = "5m") -> str:
    """A dashboard query as Prometheus would receive it (variables set to 'All').
    A live test with 1 s scrapes passes a short rate_interval such as "10s"."""
    builtins = GRAFANA_BUILTINS | {"__rate_interval": rate_interval}
    return _GRAFANA_VARIABLE.sub(lambda m: builtins.get(m.group(1), ".*"), expr)


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's prometheus package "
                    "(apt-get update && apt-get install -y prometheus); .ci/run does")
    return path


def run_promtool(*args: str) -> str:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s_objects() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, as 'Kind/name'."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_documents(path):
            objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel target and annotation query."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} '{panel['title']}' {target['refId']}", target["expr"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation '{annotation['name']}'", annotation["expr"]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


# --- the query checker itself ------------------------------------------------------


def test_query_checker_reports_unknown_metrics_labels_and_functions() -> None:
    good = 'sum by (model, le) (rate(llm_router_request_duration_seconds_bucket{model=~".*"}[5m]))'
    assert query_problems(good) == []
    assert query_problems("rate(llm_router_request_total[5m])") == [
        "metric llm_router_request_total is not in the contract"]
    assert query_problems('llm_router_tokens_total{provider="x"}') == [
        "llm_router_tokens_total has no label 'provider'"]
    assert query_problems("sum by (provider) (llm_router_tokens_total)") == [
        "grouping by 'provider', which no metric of the query carries"]
    assert query_problems("ratez(llm_router_retries_total[5m])") == ["unknown function ratez()"]
    assert grafana_to_promql('rate(x{k=~"$key"}[$__rate_interval])') == 'rate(x{k=~".*"}[5m])'


# --- every file parses -------------------------------------------------------------


def test_every_yaml_file_in_deploy_parses() -> None:
    # Helm templates are Go templates, not YAML: tests/ops/test_helm_chart.py renders them.
    paths = sorted(p for p in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")] if "templates" not in p.parts)
    assert len(paths) >= 12, paths
    for path in paths:
        documents = load_yaml_documents(path)
        assert documents, f"{path} holds no YAML document"
        assert all(isinstance(doc, dict) for doc in documents), path


# --- Grafana -------------------------------------------------------------------------


def test_dashboard_is_a_templated_grafana_dashboard() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] == "llm-router" and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("model", "provider", "key"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"], name
        definition = variables[name]["definition"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
        assert match and match.group(2) == name, definition
        assert query_problems(grafana_to_promql(match.group(1))) == [], definition
        assert name in SERIES[match.group(1).split("{")[0]], definition
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_queries_prometheus_through_the_datasource_variable() -> None:
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 20
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], f"panel '{panel['title']}' has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel '{panel['title']}' has an empty query"
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"panel '{panel['title']}' overlaps another"
        taken |= cells


def test_dashboard_queries_use_only_contract_metrics_and_labels() -> None:
    board = dashboard()
    defined = {v["name"] for v in board["templating"]["list"]} | set(GRAFANA_BUILTINS)
    problems = []
    for where, expr in dashboard_queries(board):
        problems += [f"{where}: uses undefined variable ${name}"
                     for name in _GRAFANA_VARIABLE.findall(expr) if name not in defined]
        problems += [f"{where}: {p}" for p in query_problems(grafana_to_promql(expr))]
    assert problems == []


def test_dashboard_shows_every_contract_metric() -> None:
    text = " ".join(expr for _, expr in dashboard_queries(dashboard()))
    missing = [name for name in CONTRACT if not re.search(rf"\b{name}(_bucket|_sum|_count)?\b", text)]
    assert missing == []


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query_{n}", "expr": grafana_to_promql(expr)}
             for n, (_, expr) in enumerate(dashboard_queries(dashboard()))]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool("check", "rules", str(rule_file))


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard_files() -> None:
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    assert datasources["datasources"][0]["url"].startswith("http")
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/llm-router.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


# --- Prometheus ------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in run_promtool("check", "rules", str(ALERTS))


def test_every_alert_fires_in_promtool_unit_tests() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", str(ALERT_TESTS))
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if not case["exp_alerts"]}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_alerts_cover_the_operational_failures_with_severity_and_text() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    for needed in ("LLMRouterProviderDown", "LLMRouterHighErrorRate", "LLMRouterHighLatencyP99",
                   "LLMRouterRateLimitSaturation", "LLMRouterStateDegraded", "LLMRouterConfigReloadFailed"):
        assert needed in rules, needed
    for name, rule in rules.items():
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert query_problems(rule["expr"], {"up": frozenset()}) == [], name
    degraded = rules["LLMRouterStateDegraded"]
    assert degraded["for"] == "2m" and re.search(r"llm_router_state_degraded\)?\s*==\s*1", degraded["expr"])


def test_prometheus_config_passes_promtool_check() -> None:
    config_path = DEPLOY / "prometheus" / "prometheus.yml"
    run_promtool("check", "config", str(config_path))
    jobs = [job["job_name"] for job in yaml.safe_load(config_path.read_text())["scrape_configs"]]
    assert "llm-router" in jobs  # LLMRouterInstanceDown selects up{job="llm-router"}


def test_kubernetes_scrape_config_finds_the_gateway_pods(tmp_path: Path) -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus/prometheus-kubernetes.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["job_name"] == "llm-router"
    pod = k8s_objects()["Deployment/llm-router"]["spec"]["template"]["metadata"]
    relabel = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    assert re.fullmatch(relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]["regex"],
                        pod["labels"]["app.kubernetes.io/name"])
    assert re.fullmatch(relabel[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]["regex"],
                        pod["annotations"]["prometheus.io/scrape"])
    # Debian's Prometheus is built without Kubernetes discovery: check the rest
    # of the file (relabelling included) with a static target in its place.
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape), encoding="utf-8")
    run_promtool("check", "config", str(tmp_path / "prometheus.yml"))


# --- Kubernetes ----------------------------------------------------------------------


def gateway_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = k8s_objects()["Deployment/llm-router"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def configmap_routes() -> dict[str, Any]:
    routes: dict[str, Any] = yaml.safe_load(k8s_objects()["ConfigMap/llm-router-config"]["data"]["routes.yaml"])
    return routes


def test_manifests_are_namespace_agnostic_and_all_in_the_kustomization() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            assert doc.get("apiVersion") and doc.get("kind"), path
            assert "namespace" not in doc.get("metadata", {}), f"{path} pins a namespace"
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - {"secret.example.yaml"}, "the example Secret must never be applied; all else must"


def test_example_secret_holds_placeholders_only() -> None:
    secret = k8s_objects()["Secret/llm-router-secrets"]
    assert "data" not in secret
    for name, value in secret["stringData"].items():
        assert value.startswith("REPLACE_ME"), f"{name} looks like a real value"


def test_configmap_route_table_is_valid_with_the_secret_and_deployment_env(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = k8s_objects()
    for name, value in objects["Secret/llm-router-secrets"]["stringData"].items():
        monkeypatch.setenv(name, value)
    for env in gateway_container()["env"]:  # valueFrom entries come from the Secret, set above
        if "value" in env:
            monkeypatch.setenv(env["name"], re.sub(r"\$\((\w+)\)", lambda m: os.environ[m.group(1)], env["value"]))
    table = config.parse(configmap_routes(), "deploy/kubernetes/configmap.yaml:routes.yaml")
    assert table.state.redis_url is not None
    assert table.state.redis_url.get() == "redis://:REPLACE_ME_redis_password@llm-router-redis:6379/0"
    assert table.admin.key is not None
    assert table.state.expected_replicas == objects["HorizontalPodAutoscaler/llm-router"]["spec"]["minReplicas"]
    assert table.server.shutdown_grace == 30
    spool = Path(table.state.spool_path)
    mounts = {m["mountPath"] for m in gateway_container()["volumeMounts"]}
    assert str(spool.parent) in mounts, "the usage spool must be on a writable volume"


def test_deployment_runs_the_contract_command_with_probes_and_config_mount() -> None:
    objects = k8s_objects()
    deployment = objects["Deployment/llm-router"]
    assert "replicas" not in deployment["spec"], "the HPA owns the count: an apply must not reset it"
    container = gateway_container()
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--host") + 1] == "0.0.0.0"
    config_path = Path(args[args.index("--config") + 1])
    port = int(args[args.index("--port") + 1])
    metrics_port = int(args[args.index("--metrics-port") + 1])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port, "metrics": metrics_port}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent))
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["configMap"]["name"] == "llm-router-config"
    assert config_path.name in objects["ConfigMap/llm-router-config"]["data"]
    assert container["envFrom"] == [{"secretRef": {"name": "llm-router-secrets"}}]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == metrics_port != port
    assert container["resources"]["requests"]["cpu"], "the HPA scales on the CPU request"


def test_deployment_is_non_root_with_a_read_only_root_and_writable_var() -> None:
    pod = k8s_objects()["Deployment/llm-router"]["spec"]["template"]["spec"]
    container = gateway_container()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    var = next(m for m in container["volumeMounts"] if m["mountPath"] == "/app/var")
    assert "emptyDir" in volumes[var["name"]]


def test_termination_grace_covers_pre_stop_and_the_gateway_drain() -> None:
    pod = k8s_objects()["Deployment/llm-router"]["spec"]["template"]["spec"]
    command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert configmap_routes()["server"]["shutdown_grace"] == "${LLM_ROUTER_SHUTDOWN_GRACE:-30}"
    drain = float(next(e["value"] for e in gateway_container()["env"] if e["name"] == "LLM_ROUTER_SHUTDOWN_GRACE"))
    # After the grace: the requests cut at its end finish their ending, then usage is flushed.
    assert pod["terminationGracePeriodSeconds"] > float(command[1]) + drain + SHUTDOWN_MARGIN + CLOSE_TIMEOUT


def test_service_hpa_pdb_and_redis_point_at_the_right_pods() -> None:
    objects = k8s_objects()
    pod_labels = objects["Deployment/llm-router"]["spec"]["template"]["metadata"]["labels"]
    service = objects["Service/llm-router"]["spec"]
    assert service["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in gateway_container()["ports"]}
    assert all(p["targetPort"] in port_names for p in service["ports"])
    pdb = objects["PodDisruptionBudget/llm-router"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = objects["HorizontalPodAutoscaler/llm-router"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-router"}
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    assert hpa["minReplicas"] > pdb["maxUnavailable"]
    redis_url = next(e["value"] for e in gateway_container()["env"] if e["name"] == "REDIS_URL")
    host = re.match(r"redis://:\$\(REDIS_PASSWORD\)@([^:/]+)", redis_url)
    assert host and f"Service/{host.group(1)}" in objects
    redis_pods = objects["StatefulSet/llm-router-redis"]["spec"]["template"]["metadata"]["labels"]
    assert objects[f"Service/{host.group(1)}"]["spec"]["selector"].items() <= redis_pods.items()
    assert not objects["Service/llm-router"]["spec"]["selector"].items() <= redis_pods.items()


# --- the image -------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_image_runs_the_contract_command_as_non_root_with_a_healthcheck() -> None:
    steps = dockerfile_instructions()
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    ops = dict(final_stage)
    assert ops["FROM"] == "python:3.11-slim"
    assert ops["USER"].split(":")[0] not in {"root", "0"}
    assert "/healthz" in ops["HEALTHCHECK"]
    command = json.loads(ops["ENTRYPOINT"]) + json.loads(ops["CMD"])
    assert command == ["llm-router", *gateway_container()["args"]], "image and Deployment must run the same command"
    assert any(op == "RUN" and "pip install ." in arg for op, arg in steps)


def test_every_file_the_image_copies_is_in_the_repo_and_the_build_context() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    allowed = {rule[1:].rstrip("/") for rule in ignore if rule.startswith("!")}
    sources = [src for op, arg in dockerfile_instructions() if op == "COPY" and not arg.startswith("--from")
               for src in shlex.split(arg)[:-1]]
    assert sources
    missing = [src for src in sources if not (REPO / src).exists()]
    assert missing == [], f"the image cannot be built: {missing} missing at the repository root"
    assert [src for src in sources if src.rstrip("/") not in allowed] == [], "not in Dockerfile.dockerignore"
