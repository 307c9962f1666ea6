"""What every rendered workload must hold: restricted security, probes, secrets kept secret,
graceful termination, hot-reloadable mounts and checksums that roll pods when they should."""

from __future__ import annotations

import base64
import re

import pytest
from deploy_chart import SECRET_ENV, by_kind, env_of, load_values, manifests, one, proxy_container, CHART_DIR

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_specs(objects):
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def all_containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def test_restricted_security_context_everywhere(case_objects):
    specs = list(pod_specs(case_objects))
    assert specs
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod.get("runAsUser", 1) != 0, name
        for container in all_containers(spec):
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc.get("privileged", False) is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where


def test_no_service_account_token_anywhere(case_objects):
    for name, spec in pod_specs(case_objects):
        assert spec["automountServiceAccountToken"] is False, name
    for account in by_kind(case_objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_probes_and_resources(case_objects):
    for name, spec in pod_specs(case_objects):
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} has no {probe}"
            assert container["resources"]["requests"]["memory"], where
            assert container["resources"]["limits"]["memory"], where
    proxy = proxy_container(case_objects)
    assert proxy["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert proxy["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in proxy["ports"]


def test_writable_paths_are_volumes(case_objects):
    proxy = proxy_container(case_objects)
    mounts = {m["mountPath"]: m for m in proxy["volumeMounts"]}
    assert "/tmp" in mounts
    assert env_of(proxy)["AIFW_AUDIT_DIR"]["value"] in mounts


def test_graceful_termination_outlasts_streams(case_objects):
    spec = one(case_objects, "Deployment", "aifw")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= 60
    pre_stop = proxy_container(case_objects)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and 0 < int(pre_stop[1]) < spec["terminationGracePeriodSeconds"]
    rolling = one(case_objects, "Deployment", "aifw")["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0


def test_service_links_off(case_objects):
    # A Service named aifw would otherwise inject AIFW_PORT=tcp://... into the proxy.
    for name, spec in pod_specs(case_objects):
        assert spec["enableServiceLinks"] is False, name


def test_policy_mount_follows_configmap_updates(case_objects):
    proxy = proxy_container(case_objects)
    (mount,) = [m for m in proxy["volumeMounts"] if m["name"] == "policy"]
    # subPath mounts never see the kubelet's symlink swap, so hot reload would stop working.
    assert "subPath" not in mount and "subPathExpr" not in mount
    assert mount["readOnly"] is True
    policy_arg = proxy["args"][proxy["args"].index("--policy") + 1]
    assert policy_arg.startswith(mount["mountPath"] + "/")
    assert env_of(proxy)["AIFW_POLICY"]["value"] == policy_arg


def test_topology_spread_over_zones_and_nodes(rendered_cases):
    spec = one(rendered_cases["default"], "Deployment", "aifw")["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


SECRETISH = re.compile(r"sk-[A-Za-z0-9_-]{8,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|://[^/\s:@]*:[^/\s@$]+@")


def test_no_secret_in_a_configmap_or_plain_env(case_objects):
    for cm in by_kind(case_objects, "ConfigMap"):
        for key, text in cm.get("data", {}).items():
            assert not SECRETISH.search(text), f"ConfigMap {cm['metadata']['name']}:{key}"
    for name, spec in pod_specs(case_objects):
        for container in spec["containers"]:
            for var in container.get("env", []):
                if var["name"] in SECRET_ENV or "PASSWORD" in var["name"]:
                    value = var.get("value", "")
                    # A literal is only allowed for a URL without credentials, or one that
                    # takes its password from another secret-backed variable.
                    assert not SECRETISH.search(value), f"{name}: {var['name']}"
                    if "PASSWORD" in var["name"] or var["name"] in SECRET_ENV[:-1]:
                        assert "secretKeyRef" in var.get("valueFrom", {}), f"{name}: {var['name']}"


def test_inline_secret_values_land_only_in_a_secret(rendered_cases):
    values = load_values(CHART_DIR / "ci" / "dev-inline-secrets-values.yaml")
    objects = rendered_cases["dev-inline-secrets-values"]
    secret = one(objects, "Secret")
    for name, value in values["secrets"]["values"].items():
        assert base64.b64decode(secret["data"][name]).decode() == value
        for obj in objects:
            if obj["kind"] != "Secret":
                assert value not in repr(obj), f"{name} leaked into {obj['kind']}"
    env = env_of(proxy_container(objects))
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]


def test_default_values_hold_no_secret(rendered_cases):
    assert by_kind(rendered_cases["default"], "Secret") == []


def pod_annotations(objects):
    template = one(objects, "Deployment", "aifw")["spec"]["template"]
    return template["metadata"].get("annotations", {})


def test_chart_managed_secret_change_rolls_pods():
    base = {"secrets": {"values": {"OPENAI_API_KEY": "first"}}}
    changed = {"secrets": {"values": {"OPENAI_API_KEY": "second"}}}
    first = pod_annotations(manifests(base))["checksum/secret"]
    second = pod_annotations(manifests(changed))["checksum/secret"]
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert first != second


def test_policy_change_rolls_pods_only_when_asked():
    def annotations(roll, content):
        files = {"policy.yaml": content}
        return pod_annotations(manifests({"policy": {"rollOnChange": roll, "files": files}}))

    # Default: the proxy reloads the mounted policy in place, the pod template stays the same.
    assert "checksum/policy" not in annotations(False, "version: 1\nname: a\n")
    assert annotations(True, "version: 1\nname: a\n")["checksum/policy"] != annotations(
        True, "version: 1\nname: b\n"
    )["checksum/policy"]


def test_existing_objects_get_no_checksum(rendered_cases):
    # The chart cannot see their content; docs say to restart or annotate.
    annotations = pod_annotations(rendered_cases["existing-objects-values"])
    assert not any(k.startswith("checksum/") for k in annotations)


def test_rule_files_in_subdirectories(rendered_cases):
    objects = rendered_cases["autoscaling-internal-redis-values"]
    cm = one(objects, "ConfigMap", "aifw-policy")
    assert "rules__custom-terms.txt" in cm["data"]
    volumes = one(objects, "Deployment", "aifw")["spec"]["template"]["spec"]["volumes"]
    (policy,) = [v for v in volumes if v["name"] == "policy"]
    assert {"key": "rules__custom-terms.txt", "path": "rules/custom-terms.txt"} in policy["configMap"]["items"]


def test_each_pod_writes_its_own_audit_directory(rendered_cases):
    objects = rendered_cases["autoscaling-internal-redis-values"]
    proxy = proxy_container(objects)
    (mount,) = [m for m in proxy["volumeMounts"] if m["name"] == "audit"]
    assert mount["subPathExpr"] == "$(POD_NAME)"
    assert env_of(proxy)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("scale-external-redis-values", {"secretKeyRef": {"name": "aifw-redis", "key": "url"}}),
        ("existing-objects-values", "redis://redis.platform.svc.cluster.local:6379/0"),
        ("autoscaling-internal-redis-values", "redis://:$(AIFW_REDIS_PASSWORD)@aifw-redis:6379/0"),
    ],
)
def test_redis_url_reaches_the_proxy(rendered_cases, case, expected):
    var = env_of(proxy_container(rendered_cases[case]))["AIFW_REDIS_URL"]
    if isinstance(expected, str):
        assert var["value"] == expected
    else:
        assert var["valueFrom"] == expected


def test_network_policy_limits_ingress_and_egress(rendered_cases):
    objects = rendered_cases["scale-external-redis-values"]
    policy = one(objects, "NetworkPolicy", "aifw")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    namespaces = ingress["from"][1]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert namespaces == ["apps", "ingress-nginx", "monitoring"]
    egress_ports = [p["port"] for rule in policy["egress"] for p in rule["ports"]]
    assert 53 in egress_ports and 443 in egress_ports and 6380 in egress_ports
    blocks = [peer["ipBlock"] for rule in policy["egress"] for peer in rule["to"] if "ipBlock" in peer]
    catch_all = [b for b in blocks if b["cidr"] == "0.0.0.0/0"]
    assert catch_all and "169.254.0.0/16" in catch_all[0]["except"], "cloud metadata must stay closed"


def test_internal_redis_is_reachable_only_from_the_proxy(rendered_cases):
    objects = rendered_cases["autoscaling-internal-redis-values"]
    policy = one(objects, "NetworkPolicy", "aifw-redis")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy
    selector = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "proxy"
