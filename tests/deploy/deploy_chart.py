"""Offline chart rendering shared by the deployment tests.

helm-python-sdk binds Helm's own Go library (no helm binary, no cluster, no network): the
chart is loaded, its values validated against values.schema.json and its templates rendered
exactly as `helm install` would. kubernetes-validate carries the OpenAPI schemas of the
Kubernetes releases it supports; the tests validate against the newest one it bundles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from kubernetes_validate import utils as kube_utils

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "aifw"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*.yaml"))
RELEASE = "aifw"
NAMESPACE = "llm"

# The newest Kubernetes whose schemas kubernetes-validate ships (1.37 with 1.37.0 installed).
KUBE_VERSION = kube_utils.latest_version()

# The secret-bearing environment variables of the proxy's contract.
SECRET_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "AIFW_FINGERPRINT_SECRET",
    "AIFW_AUDIT_SIGNING_KEY",
    "AIFW_PII_ENCRYPTION_KEY",
    "AIFW_PII_HASH_KEY",
    "AIFW_READINESS_TOKEN",
    "AIFW_REDIS_URL",
)


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text; raises Helm's errors (schema, `fail`)."""
    with helm.Chart.load(CHART_DIR) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def manifests(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders for these values."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render(values).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def proxy_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", RELEASE)
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "aifw"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}
