"""The Kubernetes manifests (deploy/k8s): rendered like `kustomize build` for each overlay, validated
against the bundled Kubernetes JSON schemas (kubernetes-validate, offline, strict: unknown fields
fail), and checked for what a schema cannot see: selectors, port names, probes, the autoscaling
targets, the Prometheus Operator objects."""

from __future__ import annotations

import copy
import posixpath
import subprocess
import sys

import pytest
import yaml

from tests.deploy.support import (
    ALERTS_FILE,
    K8S,
    OVERLAYS,
    PROMETHEUS_FILE,
    by_kind,
    kustomize_build,
    pod_spec,
)

KUBERNETES_VERSIONS = ("1.28", "1.37")
"""The oldest Kubernetes still widely run and the newest kubernetes-validate bundles."""


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, kustomize_build(K8S / "overlays" / request.param)


def _container(deployment: dict, name: str) -> dict:
    (c,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == name]
    return c


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- schemas -------------------------------------------------------------------------------------


def test_the_bundled_schemas_are_offline_and_reject_wrong_manifests():
    """kubernetes-validate carries the schemas in its wheel; a typo and a wrong type both fail."""
    import kubernetes_validate

    deployment = by_kind(kustomize_build(K8S / "overlays" / "gpu"), "Deployment")["triton"]
    assert kubernetes_validate.validate(deployment, "1.30", strict=True)
    typo = copy.deepcopy(deployment)
    _container(typo, "triton")["livenessprobe"] = _container(typo, "triton").pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, "1.30", strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, "1.30", strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_core_object_validates_against_the_kubernetes_schema(rendered, version):
    import kubernetes_validate

    overlay, objects = rendered
    validated, crds = [], []
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            crds.append(obj["kind"])  # checked by the tests below
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: "
                        f"{e.message} at {'/'.join(map(str, e.path))}")
        validated.append(obj["kind"])
    assert sorted(set(validated)) == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "PersistentVolumeClaim",
        "PodDisruptionBudget", "Service",
    ]
    assert sorted(crds) == ["PrometheusRule", "ServiceMonitor", "ServiceMonitor"]


def test_every_object_is_in_the_namespace(rendered):
    _, objects = rendered
    (ns,) = by_kind(objects, "Namespace")
    for obj in objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == ns, f"{obj['kind']}/{obj['metadata']['name']}"


# --- overlays ------------------------------------------------------------------------------------


def test_the_gpu_overlay_asks_for_one_gpu_on_gpu_nodes_and_the_cpu_overlay_for_none():
    gpu = by_kind(kustomize_build(K8S / "overlays" / "gpu"), "Deployment")
    cpu = by_kind(kustomize_build(K8S / "overlays" / "cpu"), "Deployment")
    g, c = _container(gpu["triton"], "triton"), _container(cpu["triton"], "triton")
    assert g["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod_spec(gpu["triton"])["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec(gpu["triton"])["tolerations"]
    assert "--pinned-memory-pool-byte-size=0" not in g["args"]
    assert not any("nvidia.com/gpu" in r for r in c["resources"].values())
    assert "nodeSelector" not in pod_spec(cpu["triton"]) and "tolerations" not in pod_spec(cpu["triton"])
    assert c["args"][-2:] == ["--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false"]
    # Both keep the base's flags and memory bounds; the gateway is the same in both.
    assert g["args"] == c["args"][:-2]
    assert g["resources"]["limits"]["memory"] == c["resources"]["limits"]["memory"] == "8Gi"
    assert gpu["gateway"] == cpu["gateway"]


# --- Triton --------------------------------------------------------------------------------------


def test_triton_probes_use_the_health_endpoints_and_allow_ten_minutes_to_load(rendered):
    _, objects = rendered
    c = _container(by_kind(objects, "Deployment")["triton"], "triton")
    port_names = {p["name"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 600
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in port_names | {8000}


def test_triton_restricts_model_control_with_the_key_from_a_secret(rendered):
    _, objects = rendered
    c = _container(by_kind(objects, "Deployment")["triton"], "triton")
    ref = _env(c)["TRITON_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "triton-admin-key", "key": "admin-key"}
    assert "--http-restricted-api=model-repository:admin-key=$(TRITON_ADMIN_KEY)" in c["args"]
    assert "--grpc-restricted-protocol=model-repository:admin-key=$(TRITON_ADMIN_KEY)" in c["args"]
    assert "--model-control-mode=explicit" in c["args"] and "--load-model=*" in c["args"]
    # The Secret is created out of band (no key in git); the README says how, with the same names.
    from djserve.settings import PROJECT_ROOT

    assert "create secret generic triton-admin-key --from-literal=admin-key=" in (PROJECT_ROOT / "README.md").read_text()


def test_both_deployments_mount_the_model_repository_read_only_where_they_read_it(rendered):
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    claims = by_kind(objects, "PersistentVolumeClaim")
    triton, gateway = _container(deployments["triton"], "triton"), _container(deployments["gateway"], "gateway")
    (repo_arg,) = [a for a in triton["args"] if a.startswith("--model-repository=")]
    wanted = {"triton": (triton, repo_arg.split("=", 1)[1]), "gateway": (gateway, _env(gateway)["DJSERVE_GATEWAY_REPOSITORY"]["value"])}
    for name, (container, path) in wanted.items():
        volumes = {v["name"]: v for v in pod_spec(deployments[name])["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
        assert mount.get("readOnly") is True, name
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        assert claim in claims, f"{name} mounts a PVC that does not exist: {claim}"
        assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"]  # shared by every node


# --- gateway -------------------------------------------------------------------------------------


def test_gateway_probes_and_policy_configmap_mount(rendered):
    _, objects = rendered
    deployment = by_kind(objects, "Deployment")["gateway"]
    c = _container(deployment, "gateway")
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"

    policy_file = _env(c)["DJSERVE_GATEWAY_POLICY_FILE"]["value"]
    volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == posixpath.dirname(policy_file)]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates: no live policy reload"
    configmap = by_kind(objects, "ConfigMap")[volumes[mount["name"]]["configMap"]["name"]]
    assert posixpath.basename(policy_file) in configmap["data"]

    drift = _env(c)["DJSERVE_GATEWAY_DRIFT_BASELINE_DIR"]["value"]
    (drift_mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == drift]
    assert volumes[drift_mount["name"]]["configMap"]["optional"] is True


def test_the_policy_configmap_is_the_file_compose_mounts():
    from tests.deploy.support import DEPLOY

    configmap = by_kind(kustomize_build(K8S / "overlays" / "gpu"), "ConfigMap")["traffic-policy"]
    assert configmap["data"] == {"traffic_policy.json": (DEPLOY / "policy" / "traffic_policy.json").read_text()}


# --- services, autoscaling, disruption budgets -----------------------------------------------------


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_services_select_pods_and_target_named_container_ports(rendered):
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    for service in by_kind(objects, "Service").values():
        targets = [d for d in deployments.values() if _selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, f"Service {service['metadata']['name']} selects {len(targets)} Deployments"
        container_ports = {p["name"]: p["containerPort"] for c in pod_spec(targets[0])["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (service["metadata"]["name"], port)
            assert port["port"] == container_ports[port["targetPort"]]
            assert port["name"] == port["targetPort"]


def test_deployment_selectors_match_their_pod_templates(rendered):
    _, objects = rendered
    for d in by_kind(objects, "Deployment").values():
        assert _selects(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])


def test_autoscalers_scale_existing_deployments_2_to_10_at_70_percent_cpu(rendered):
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    hpas = by_kind(objects, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"gateway", "triton"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment") and ref["name"] in deployments
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
        # CPU utilisation is relative to the request: every container must request CPU.
        for c in pod_spec(deployments[ref["name"]])["containers"]:
            assert "cpu" in c["resources"]["requests"], c["name"]


def test_disruption_budgets_cover_each_deployment(rendered):
    _, objects = rendered
    deployments = by_kind(objects, "Deployment")
    covered = []
    for pdb in by_kind(objects, "PodDisruptionBudget").values():
        hits = [n for n, d in deployments.items() if _selects(pdb["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])]
        assert len(hits) == 1
        assert pdb["spec"]["minAvailable"] >= 1
        covered += hits
    assert sorted(covered) == sorted(deployments)


# --- Prometheus Operator objects -------------------------------------------------------------------


def test_service_monitors_select_one_service_each_on_existing_port_names(rendered):
    _, objects = rendered
    services = by_kind(objects, "Service")
    monitors = by_kind(objects, "ServiceMonitor")
    scraped = {}
    for name, sm in monitors.items():
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        hits = [s for s in services.values() if _selects(sm["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
        assert len(hits) == 1, f"ServiceMonitor {name} selects {[s['metadata']['name'] for s in hits]}: each target once"
        port_names = {p["name"] for p in hits[0]["spec"]["ports"]}
        assert sm["spec"]["endpoints"], name
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in port_names, (name, ep["port"])
            assert ep.get("path", "/metrics") == "/metrics"
        scraped[hits[0]["metadata"]["name"]] = hits[0]
    # The operator's job label is the Service name: the same job names as docker-compose's Prometheus.
    jobs = {j["job_name"] for j in yaml.safe_load(PROMETHEUS_FILE.read_text())["scrape_configs"]}
    assert set(scraped) == {"triton", "gateway"} and set(scraped) <= jobs


def test_the_prometheus_rule_carries_exactly_the_alerts_of_alerts_yml(rendered):
    _, objects = rendered
    (rule,) = by_kind(objects, "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    # ... and is byte-for-byte what the generator writes (so a stale copy is caught with its fix).
    done = subprocess.run([sys.executable, str(K8S / "sync_prometheus_rule.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
