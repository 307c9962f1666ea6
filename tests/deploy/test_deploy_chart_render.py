"""The chart renders, lints strictly and validates against current Kubernetes, offline."""

from __future__ import annotations

import copy

import helm_python as helm
import kubernetes_validate
import pytest
from deploy_chart import (
    CHART_DIR,
    CI_VALUES,
    KUBE_VERSION,
    by_kind,
    load_values,
    manifests,
    one,
    render,
)
from kubernetes_validate import utils as kube_utils
from packaging.version import Version

# Kinds from CRDs that kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

LINT_CASES = [pytest.param(None, id="default")] + [pytest.param(p, id=p.stem) for p in CI_VALUES]


def test_validates_against_a_current_kubernetes():
    # A stale kubernetes-validate would silently validate against an old API.
    assert Version(KUBE_VERSION) >= Version("1.33")
    assert KUBE_VERSION == kube_utils.all_versions()[-1]


def test_ci_values_cover_the_optional_parts(rendered_cases):
    kinds = {o["kind"] for objects in rendered_cases.values() for o in objects}
    assert {
        "Deployment", "Service", "ServiceAccount", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "Ingress", "PersistentVolumeClaim",
        "PrometheusRule",
    } <= kinds
    assert len(CI_VALUES) >= 4


@pytest.mark.parametrize("values_file", LINT_CASES)
def test_lint_strict_is_clean(values_file):
    values = load_values(values_file) if values_file else None
    report = helm.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    # Severity 1 is information (Helm recommends an icon); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_every_manifest_validates_strictly(case_objects):
    for obj in case_objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        # Raises ValidationError (unknown field, wrong type) or SchemaNotFoundError (kind or
        # apiVersion that the current Kubernetes no longer serves).
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field(rendered_cases):
    deployment = copy.deepcopy(one(rendered_cases["default"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


def test_service_monitor_scrapes_the_service_port(rendered_cases):
    objects = rendered_cases["scale-external-redis-values"]
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service", "aifw")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


@pytest.mark.parametrize("replicas", [2, 5])
def test_several_replicas_without_redis_do_not_render(replicas):
    with pytest.raises(helm.HelmRenderError, match=rf"{replicas} replicas need Redis.*multiplied"):
        render({"replicaCount": replicas})


def test_autoscaling_without_redis_does_not_render():
    with pytest.raises(helm.HelmRenderError, match="6 replicas need Redis"):
        render({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}})


@pytest.mark.parametrize(
    "redis",
    [
        {"url": "rediss://redis.example:6380/0"},
        {"existingSecret": "aifw-redis"},
        {"internal": {"enabled": True}},
    ],
    ids=["url", "existing-secret", "internal"],
)
def test_several_replicas_with_redis_render(redis):
    objects = manifests({"replicaCount": 3, "redis": redis})
    assert one(objects, "Deployment", "aifw")["spec"]["replicas"] == 3
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_one_replica_has_no_disruption_budget(rendered_cases):
    # minAvailable 1 of 1 would block every node drain.
    assert by_kind(rendered_cases["default"], "PodDisruptionBudget") == []


def test_two_redis_choices_do_not_render():
    with pytest.raises(helm.HelmRenderError, match="choose one Redis"):
        render({"redis": {"url": "redis://r:6379/0", "internal": {"enabled": True}}})


def test_shared_audit_volume_must_be_read_write_many():
    values = {
        "replicaCount": 2,
        "redis": {"url": "redis://r:6379/0"},
        "audit": {"persistence": {"enabled": True}},
    }
    with pytest.raises(helm.HelmRenderError, match="ReadWriteOnce audit volume"):
        render(values)
    values["audit"]["persistence"]["accessModes"] = ["ReadWriteMany"]
    assert one(manifests(values), "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_policy_file_name_must_be_among_the_files():
    with pytest.raises(helm.HelmRenderError, match=r'policy.fileName "main.yaml" is not among'):
        render({"policy": {"fileName": "main.yaml"}})


@pytest.mark.parametrize(
    "typo",
    [
        {"replicaCont": 2},
        {"redis": {"urll": "redis://r:6379/0"}},
        {"audit": {"persistence": {"enabeld": True}}},
        {"networkPolicy": {"egress": {"providers": {"cidr": ["0.0.0.0/0"]}}}},
        {"secrets": {"values": {"OPENAI_APIKEY": "x"}}},
    ],
    ids=["top-level", "redis", "nested", "deep", "secret-name"],
)
def test_values_with_a_typo_fail(typo):
    with pytest.raises(helm.HelmValuesError, match="schema"):
        render(typo)
    report = helm.lint(CHART_DIR, typo, strict=True)
    assert report["errors"], "lint must report the typo too"


@pytest.mark.parametrize(
    "bad",
    [
        {"logFormat": "text"},
        {"service": {"port": 0}},
        {"securityContext": {"runAsUser": 0}},
        {"image": {"digest": "latest"}},
    ],
    ids=["enum", "port", "root-uid", "digest"],
)
def test_values_with_a_bad_value_fail(bad):
    with pytest.raises(helm.HelmValuesError):
        render(bad)


def test_every_values_key_is_described():
    """values.schema.json is the reference for operators: no undocumented key."""
    with helm.Chart.load(CHART_DIR) as chart:
        schema = chart.schema
    assert schema is not None

    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
        for name, child in node.get("properties", {}).items():
            assert child.get("description"), f"{path}.{name} has no description"
            walk(child, f"{path}.{name}")

    walk(schema, "$")
