"""docker-compose.yml: valid against the Compose Specification's JSON schema (the copy vendored in
the check-jsonschema wheel; there is no Docker engine or compose plugin here) and structurally sound:
builds, dependencies, healthchecks, mounts, the GPU reservation, the Triton and MLflow flags."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from djserve.settings import PROJECT_ROOT
from tests.deploy.support import TEST_ENV, InterpolationError, compose, compose_raw, interpolate, parse_port, parse_volume

SERVICES = {"triton", "gateway", "postgres", "mlflow", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def schema_validator():
    import importlib.resources

    import jsonschema

    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(text)
    assert schema["title"] == "Compose Specification"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_the_compose_file_is_valid_against_the_compose_specification(schema_validator):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema_validator.iter_errors(compose())]
    assert errors == []


def test_the_schema_check_catches_mistakes(schema_validator):
    bad = compose()
    bad["services"]["triton"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilitys"] = ["gpu"]
    assert list(schema_validator.iter_errors(bad))
    bad = compose()
    bad["services"]["gateway"]["depends_on"]["triton"]["condition"] = "healthy"  # not a compose condition
    assert list(schema_validator.iter_errors(bad))


def test_secrets_are_required_not_defaulted():
    for name in ("TRITON_ADMIN_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        env = {k: v for k, v in TEST_ENV.items() if k != name}
        with pytest.raises(InterpolationError, match=name):
            compose(env)
    # No secret has a literal value in the file.
    raw = (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert TEST_ENV["TRITON_ADMIN_KEY"] not in raw
    assert not re.search(r"^\s*\w*(PASSWORD|KEY)\w*:\s*[^$\s]", raw, re.M)


def test_services_build_or_pull_and_depend_on_existing_services():
    services = compose()["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            dockerfile = PROJECT_ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            assert re.search(r"^FROM\s+\S+", dockerfile.read_text(), re.M), dockerfile
        deps = svc.get("depends_on", {})
        for dep in deps:
            assert dep in services, f"{name} depends on unknown service {dep}"
            if isinstance(deps, dict) and deps[dep].get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
        assert "healthcheck" in svc and svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert services["gateway"]["depends_on"]["triton"]["condition"] == "service_healthy"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_healthchecks_probe_the_readiness_endpoints():
    services = compose()["services"]
    joined = {n: " ".join(s["healthcheck"]["test"]) for n, s in services.items()}
    assert "/v2/health/ready" in joined["triton"]
    assert "/readyz" in joined["gateway"]
    assert "/health" in joined["mlflow"]
    assert "pg_isready" in joined["postgres"]


def test_every_bind_mount_source_exists_in_the_repository():
    """Named volumes are declared; bind sources exist (the state dir `.djserve` is created at run time)."""
    cfg = compose()
    for name, svc in cfg["services"].items():
        for spec in svc.get("volumes", []):
            v = parse_volume(spec)
            if not v.bind:
                assert v.source in cfg.get("volumes", {}), f"{name}: undeclared named volume {v.source}"
                continue
            path = (PROJECT_ROOT / v.source).resolve()
            if PROJECT_ROOT / ".djserve" in (path, *path.parents):
                continue
            assert path.exists(), f"{name}: bind source {v.source} does not exist"
            assert v.read_only, f"{name}: {v.source} should be mounted read-only"


def test_triton_gets_a_gpu_and_serves_the_repository_read_only():
    triton = compose()["services"]["triton"]
    (device,) = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    mounts = {parse_volume(v).target: parse_volume(v) for v in triton["volumes"]}
    assert mounts["/models"].source == "./model_repository" and mounts["/models"].read_only
    cmd = triton["command"]
    assert cmd[0] == "tritonserver"
    for flag in ("--model-repository=/models", "--model-control-mode=explicit", "--load-model=*", "--strict-readiness=true"):
        assert flag in cmd
    key = TEST_ENV["TRITON_ADMIN_KEY"]
    assert f"--http-restricted-api=model-repository:admin-key={key}" in cmd
    assert f"--grpc-restricted-protocol=model-repository:admin-key={key}" in cmd
    # The image's python steps need tokenizers and numpy: deploy/triton/Dockerfile installs them.
    assert triton["build"]["dockerfile"] == "deploy/triton/Dockerfile"
    assert int(re.match(r"(\d+)", triton["shm_size"]).group(1)) >= 1  # the python backend's shm


def test_the_gateway_image_installs_the_gateway_extras_without_torch():
    dockerfile = (PROJECT_ROOT / "deploy" / "gateway" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert "pip install -c constraints.txt '.[gateway,client]'" in dockerfile
    assert "torch" not in re.sub(r"#.*", "", dockerfile)
    import tomllib

    extras = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in ("gateway", "client"):
        assert not [r for r in extras[extra] if re.match(r"(torch|tensorflow|nvidia-pytriton)\b", r)], extra
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "model_repository" in ignored  # a 4 GB venv never enters the context


def test_mlflow_runs_on_postgres_with_served_artifacts_and_flags_mlflow_knows():
    cfg = compose()
    cmd = cfg["services"]["mlflow"]["command"]
    flags = dict(a.split("=", 1) if "=" in a else (a, "") for a in cmd if a.startswith("--"))
    assert flags["--backend-store-uri"].startswith("postgresql")
    assert "@postgres:5432/" in flags["--backend-store-uri"]
    assert "--serve-artifacts" in flags
    targets = {parse_volume(v).target for v in cfg["services"]["mlflow"]["volumes"]}
    assert flags["--artifacts-destination"] in targets  # artifacts survive the container
    assert int(flags["--port"]) == parse_port(cfg["services"]["mlflow"]["ports"][0])[2] == 5000
    # Every flag is one the project's MLflow (the image installs the same pin) accepts.
    help_text = subprocess.run([sys.executable, "-m", "mlflow", "server", "--help"], capture_output=True, text=True, timeout=120).stdout
    for flag in flags:
        assert re.search(rf"(^|\s){re.escape(flag)}[\s/,]", help_text), f"mlflow server has no {flag}"
    pg = cfg["services"]["postgres"]["environment"]
    assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}" in flags["--backend-store-uri"]


def test_the_interpolated_file_has_no_unresolved_variables():
    text = json.dumps(compose())
    assert "${" not in text
    # ... and an unset optional variable takes its documented default.
    assert parse_port(compose()["services"]["gateway"]["ports"][0])[0] == "127.0.0.1"
    assert parse_port(compose({**TEST_ENV, "DJSERVE_BIND": "0.0.0.0"})["services"]["gateway"]["ports"][0])[0] == "0.0.0.0"
    assert interpolate(compose_raw()["services"]["gateway"]["volumes"][1], {}) == "./deploy/policy:/etc/djserve/policy:ro"


def test_image_tags_are_pinned():
    for name, svc in compose()["services"].items():
        image = svc["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: {image}"
    base = re.search(r"^ARG TRITON_IMAGE=(\S+)", (PROJECT_ROOT / "deploy/triton/Dockerfile").read_text(), re.M).group(1)
    assert base == "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51, the server the tests run


def test_dockerfile_pins_equal_the_project_pins():
    constraints = dict(
        line.strip().split("==", 1) for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pins = {k.lower().replace("_", "-"): v for k, v in constraints.items()}
    for dockerfile in ("deploy/triton/Dockerfile", "deploy/mlflow/Dockerfile"):
        text = (PROJECT_ROOT / dockerfile).read_text()
        for name, version in re.findall(r'"([A-Za-z0-9_.-]+)==([^"]+)"', text):
            key = name.lower().replace("_", "-")
            if key in pins:
                assert version == pins[key], f"{dockerfile}: {name}=={version}, constraints.txt has {pins[key]}"
            else:
                assert key == "psycopg2-binary", f"{dockerfile}: {name} is not in constraints.txt"
    assert "tokenizers==" in (PROJECT_ROOT / "deploy/triton/Dockerfile").read_text()
    assert Path(PROJECT_ROOT / "deploy/mlflow/Dockerfile").read_text().count('"mlflow==') == 1
