"""The deployment files agree with the code: ports, the gateway's settings and paths, the traffic
policy's model families, the scrape targets."""

from __future__ import annotations

import inspect
import posixpath

import pytest
import yaml

from tests.deploy.support import (
    DEPLOY,
    K8S,
    OVERLAYS,
    PROMETHEUS_FILE,
    TEST_ENV,
    by_kind,
    compose,
    kustomize_build,
    parse_port,
    parse_volume,
    pod_spec,
)


def _triton_ports() -> dict[str, int]:
    from djserve.triton import TritonSettings

    fields = TritonSettings.model_fields
    return {name: fields[f"{name}_port"].default for name in ("http", "grpc", "metrics")}


def _gateway_port() -> int:
    from djserve.gateway import GatewayServer

    return inspect.signature(GatewayServer.__init__).parameters["port"].default


def _flags(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)


@pytest.fixture(scope="module", params=OVERLAYS)
def k8s(request) -> list[dict]:
    return kustomize_build(K8S / "overlays" / request.param)


def _container(objects, deployment: str) -> dict:
    return pod_spec(by_kind(objects, "Deployment")[deployment])["containers"][0]


def _gateway_env_compose() -> dict[str, str]:
    return compose()["services"]["gateway"]["environment"]


def _gateway_env_k8s(objects) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(objects, "gateway")["env"] if "value" in e}


# --- ports ---------------------------------------------------------------------------------------


def test_the_code_defaults_are_the_documented_ports():
    assert _triton_ports() == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert _gateway_port() == 3000


def test_compose_ports_equal_the_code_defaults():
    ports = _triton_ports()
    services = compose()["services"]
    published = {parse_port(p)[2]: parse_port(p)[1] for p in services["triton"]["ports"]}
    assert published == {p: p for p in ports.values()}
    flags = _flags(services["triton"]["command"])
    assert {k: int(flags[f"--{k}-port"]) for k in ports} == ports
    assert [parse_port(p)[2] for p in services["gateway"]["ports"]] == [_gateway_port()]
    assert f":{ports['http']}/v2/health/ready" in " ".join(services["triton"]["healthcheck"]["test"])
    assert f":{_gateway_port()}/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])
    assert f"--port\", \"{_gateway_port()}\"" in (DEPLOY / "gateway" / "Dockerfile").read_text()


def test_k8s_ports_equal_the_code_defaults(k8s):
    ports = _triton_ports()
    triton = _container(k8s, "triton")
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == ports
    flags = _flags(triton["args"])
    assert {k: int(flags[f"--{k}-port"]) for k in ports} == ports
    services = by_kind(k8s, "Service")
    assert {p["name"]: p["port"] for p in services["triton"]["spec"]["ports"]} == ports
    gateway = _container(k8s, "gateway")
    assert [p["containerPort"] for p in gateway["ports"]] == [_gateway_port()]
    assert [p["port"] for p in services["gateway"]["spec"]["ports"]] == [_gateway_port()]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        for c, name in ((triton, "http"), (gateway, "http")):
            assert c[probe]["httpGet"]["port"] == name


def test_prometheus_scrapes_the_code_ports_of_the_compose_services():
    cfg = yaml.safe_load(PROMETHEUS_FILE.read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["triton"]["static_configs"][0]["targets"] == [f"triton:{_triton_ports()['metrics']}"]
    assert jobs["gateway"]["static_configs"][0]["targets"] == [f"gateway:{_gateway_port()}"]
    assert jobs["gateway"].get("metrics_path", "/metrics") == "/metrics"
    assert {"triton", "gateway"} <= set(compose()["services"])
    # The rule file Prometheus loads is alerts.yml, through the compose mount of deploy/prometheus.
    mounts = {parse_volume(v).target: parse_volume(v).source for v in compose()["services"]["prometheus"]["volumes"]}
    (rules,) = cfg["rule_files"]
    assert mounts[posixpath.dirname(rules)] == "./deploy/prometheus"
    assert (DEPLOY / "prometheus" / posixpath.basename(rules)).is_file()


# --- the gateway's settings --------------------------------------------------------------------


def _check_gateway_env(env: dict[str, str], triton_host: str):
    from bentos.settings import GatewaySettings

    prefix = GatewaySettings.model_config["env_prefix"]
    fields = {f"{prefix}{name}".upper() for name in GatewaySettings.model_fields}
    unknown = [k for k in env if k.startswith("DJSERVE_") and k not in fields]
    assert not unknown, f"not GatewaySettings fields: {unknown}"
    settings = GatewaySettings(**{k[len(prefix):].lower(): v for k, v in env.items() if k in fields})
    assert settings.triton_url.removeprefix("dns:///") == f"{triton_host}:{_triton_ports()['grpc']}"
    return settings


def test_compose_gateway_env_names_are_settings_and_paths_are_mounted():
    env = _gateway_env_compose()
    settings = _check_gateway_env(env, "triton")
    mounts = {parse_volume(v).target: parse_volume(v) for v in compose()["services"]["gateway"]["volumes"]}
    assert str(settings.repository) in mounts and mounts[str(settings.repository)].source == "./model_repository"
    assert mounts[str(settings.repository)].read_only
    policy_dir = mounts[posixpath.dirname(str(settings.policy_file))]
    assert policy_dir.source == "./deploy/policy"  # the folder, so atomic replacements are seen
    assert (DEPLOY / "policy" / settings.policy_file.name).is_file()
    assert str(settings.drift_baseline_dir) in mounts
    # The Triton service mounts the same repository at the path it serves.
    triton_mounts = {parse_volume(v).target: parse_volume(v).source for v in compose()["services"]["triton"]["volumes"]}
    assert triton_mounts[_flags(compose()["services"]["triton"]["command"])["--model-repository"]] == "./model_repository"


def test_k8s_gateway_env_names_are_settings_and_paths_are_mounted(k8s):
    env = _gateway_env_k8s(k8s)
    services = by_kind(k8s, "Service")
    settings = _check_gateway_env(env, "triton-headless")
    assert "triton-headless" in services  # TRITON_URL resolves to every Triton pod (round robin)
    assert services["triton-headless"]["spec"]["clusterIP"] == "None"
    gateway = _container(k8s, "gateway")
    volumes = {v["name"]: v for v in pod_spec(by_kind(k8s, "Deployment")["gateway"])["volumes"]}
    mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
    policy = mounts[posixpath.dirname(str(settings.policy_file))]
    assert settings.policy_file.name in by_kind(k8s, "ConfigMap")[volumes[policy["name"]]["configMap"]["name"]]["data"]
    repo = mounts[str(settings.repository)]
    assert "persistentVolumeClaim" in volumes[repo["name"]] and repo["readOnly"]
    assert str(settings.drift_baseline_dir) in mounts


def test_compose_and_k8s_give_the_gateway_the_same_settings(k8s):
    # Only the way to Triton differs: one container in compose, every replica's pod in k8s.
    url = "DJSERVE_GATEWAY_TRITON_URL"
    assert {k: v for k, v in _gateway_env_k8s(k8s).items() if k != url} == {k: v for k, v in _gateway_env_compose().items() if k != url}


def test_compose_and_k8s_run_triton_with_the_same_flags(k8s):
    """Same server flags in both (k8s expands the key from its Secret; the CPU overlay adds two)."""
    compose_cmd = [a.replace(TEST_ENV["TRITON_ADMIN_KEY"], "$(TRITON_ADMIN_KEY)") for a in compose()["services"]["triton"]["command"][1:]]
    k8s_args = [a for a in _container(k8s, "triton")["args"] if not a.startswith(("--pinned-memory-pool-byte-size", "--allow-gpu-metrics"))]
    assert sorted(compose_cmd) == sorted(k8s_args)


def test_the_restricted_api_flags_are_the_ones_the_code_passes(k8s):
    """The embedded Triton (djserve/triton/admin.py) and the deployments restrict the same API with
    the same header, so one client setting (DJSERVE_TRITON_ADMIN_KEY) works against both."""
    admin = pytest.importorskip("djserve.triton.admin")
    restricted_api_args = getattr(admin, "restricted_api_args", None)
    if restricted_api_args is None:
        pytest.skip("djserve.triton.admin has no restricted_api_args")
    key = TEST_ENV["TRITON_ADMIN_KEY"]
    code = restricted_api_args(key)
    assert code and all(a in compose()["services"]["triton"]["command"] for a in code)
    k8s_args = [a.replace("$(TRITON_ADMIN_KEY)", key) for a in _container(k8s, "triton")["args"]]
    assert all(a in k8s_args for a in code)


# --- the traffic policy ------------------------------------------------------------------------


def test_the_policy_file_parses_and_names_exactly_the_exported_families():
    from djserve.traffic import FAMILIES, TrafficPolicy
    from djserve.specs import EXPORTED

    policy = TrafficPolicy.model_validate_json((DEPLOY / "policy" / "traffic_policy.json").read_text())
    assert sorted(policy.families) == sorted(EXPORTED) == sorted(FAMILIES)
    for family, fp in policy.families.items():
        assert fp.canary is None and fp.canary_percent == 0, f"{family}: a deployment starts without a canary"


def test_the_policy_file_is_what_the_gateways_store_reads(tmp_path):
    """Through djserve.traffic.PolicyStore, as the gateway reads it (no fallback to the default)."""
    import shutil

    from djserve.traffic import PolicyStore, TrafficPolicy

    path = tmp_path / "traffic_policy.json"
    shutil.copy(DEPLOY / "policy" / "traffic_policy.json", path)
    store = PolicyStore(path, default=lambda: TrafficPolicy.all_stable(version=99))
    policy = store.current()
    assert store.from_file and store.last_error is None
    assert {f: p.stable for f, p in policy.families.items()} == {f: 1 for f in policy.families}
