"""Render the llm-router chart offline with the Helm engine (helm-python-sdk binds
Helm's own Go SDK, so this is `helm template` / `helm lint` without the helm binary).

    python deploy/helm/render.py                      # print `helm template` of the defaults
    python deploy/helm/render.py -f values-prod.yaml  # with values files, in order
    python deploy/helm/render.py --write-manifests    # regenerate deploy/kubernetes/
    python deploy/helm/render.py --lint

deploy/kubernetes/ is the chart rendered with its default values (release
"llm-router"), one file per template, for `kubectl apply -k`;
tests/ops/test_helm_chart.py checks that they agree.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[1]
CHART = DEPLOY / "helm" / "llm-router"
MANIFESTS = DEPLOY / "kubernetes"
RELEASE = "llm-router"
GENERATED = ("# Generated from deploy/helm/llm-router with its default values:\n"
             "#   python deploy/helm/render.py --write-manifests\n"
             "# Do not edit: change the chart (tests/ops/test_helm_chart.py checks they agree).\n")
# Files of deploy/kubernetes that are not rendered output.
HAND_WRITTEN = {"kustomization.yaml", "secret.example.yaml"}


def merged_values(values_files: list[Path]) -> dict[str, Any]:
    """The values files merged in order, as `helm -f a -f b` does (maps deep, the rest replaced)."""
    merged: dict[str, Any] = {}
    for path in values_files:
        _deep_merge(merged, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return merged


def _deep_merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE,
           namespace: str = "default") -> dict[str, str]:
    """Template name (e.g. "deployment.yaml") -> its rendered text, empty ones left out."""
    import helm_python as helm  # the Helm engine; imported here so --help works without it

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    prefix = f"{CHART.name}/templates/"
    return {path.removeprefix(prefix): text.strip() + "\n" for path, text in sorted(rendered.items())
            if path.endswith(".yaml") and text.strip()}


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]


def lint(values: dict[str, Any] | None = None) -> dict[str, Any]:
    import helm_python as helm

    report: dict[str, Any] = helm.lint(CHART, values or {}, strict=True)
    return report


def manifest_files() -> dict[str, str]:
    """What deploy/kubernetes/ must hold: the default rendering, one file per template."""
    return {name: GENERATED + text for name, text in render().items()}


def kustomization(names: list[str]) -> str:
    resources = "".join(f"  - {name}\n" for name in names)
    return ("# kubectl apply -k deploy/kubernetes [-n NAMESPACE]\n"
            "# No namespace is set here: pick one with -n, or add `namespace:` in an overlay.\n"
            "# The Secret is not listed on purpose (see secret.example.yaml): create it first.\n"
            "# Generated with the manifests: python deploy/helm/render.py --write-manifests\n"
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n" + resources)


def write_manifests() -> None:
    files = manifest_files()
    for stale in MANIFESTS.glob("*.yaml"):
        if stale.name not in HAND_WRITTEN and stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (MANIFESTS / name).write_text(text, encoding="utf-8")
    (MANIFESTS / "kustomization.yaml").write_text(kustomization(sorted(files)), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--values", type=Path, action="append", default=[])
    parser.add_argument("--write-manifests", action="store_true")
    parser.add_argument("--lint", action="store_true")
    args = parser.parse_args()
    values = merged_values(args.values)
    if args.write_manifests:
        write_manifests()
        return 0
    if args.lint:
        report = lint(values)
        for message in report["messages"]:
            print(f"[{message['severity']}] {message['path']}: {message['error']}")
        return 1 if report["errors"] or any(m["severity"] >= 2 for m in report["messages"]) else 0
    for name, text in render(values).items():
        sys.stdout.write(f"---\n# Source: {CHART.name}/templates/{name}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
