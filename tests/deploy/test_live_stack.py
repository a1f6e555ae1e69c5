"""Against the real stack (the session's tritonserver and `bentoml serve`):

- every metric a dashboard panel or an alert queries is exported, with every label the query uses;
- the Triton flags of docker-compose and of both k8s overlays start the real Triton 2.51, and its
  model-control API then refuses callers without the admin key (HTTP and gRPC) and serves those
  with it.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import httpx
import pytest

from tests.conftest import free_port
from tests.deploy.support import (
    K8S,
    OVERLAYS,
    TEST_ENV,
    all_queries,
    analyse,
    by_kind,
    compose,
    kustomize_build,
    pod_spec,
    query_problems,
    scrape_series,
    scrape_values,
)

CHAT = ["This is an amazing DJ set!", "¡Qué aburrido!", "Der Drop war unglaublich", "meh"]


@pytest.fixture(scope="module")
def scrapes(triton, gateway) -> tuple[str, str]:
    """Both /metrics pages after traffic on every model type: 100 chat messages (with a drift
    baseline in place, so the drift gauge gets computed), recommendations for a known user, one live
    beat-tracking chunk."""
    from bentos.monitoring import PredictionMonitor
    from loadtest.samples import click_track, encode

    baseline = PredictionMonitor(gateway.policy_file.parent / "drift").set_baseline(
        "sentiment", [0.2, 0.4, 0.5, 0.6, 0.8], source="tests/deploy"
    )
    chunk = base64.b64encode(encode(click_track(120, 1.0), fmt="wav")).decode()
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        for i in range(100):  # the drift check runs every 50 predictions once 100 are in the window
            r = http.post("/ai/sentiment/analyze", json={"text": f"{CHAT[i % len(CHAT)]} #{i}"})
            assert r.status_code == 200, r.text
        r = http.post("/ai/recommendations/battles", json={"userId": "test-user-123", "limit": 5})
        assert r.status_code == 200 and r.json()["coldStart"] is False, r.text
        r = http.post("/ai/live/beats", json={"streamId": "deploy-test", "audioData": {"base64": chunk, "format": "wav"}})
        assert r.status_code == 200, r.text
        gateway_text = http.get("/metrics").text
    triton_text = httpx.get(triton.metrics_url, timeout=30).text
    baseline.unlink()  # the session's gateway serves other tests: leave it without a baseline
    return triton_text, gateway_text


def test_every_queried_metric_is_exported_with_the_labels_queried(scrapes):
    series: dict[str, set[str]] = {}
    for text in scrapes:
        for name, labels in scrape_series(text).items():
            series.setdefault(name, set()).update(labels)
    problems, checked = query_problems(all_queries(), series)
    assert problems == [], "\n".join(problems)
    # The families issue 6 names, all exported and all used.
    assert {
        "ai_model_prediction_latency_seconds_bucket", "ai_model_predictions_total", "ai_model_drift_score",
        "nv_inference_queue_duration_us", "nv_inference_request_success", "nv_inference_request_failure",
        "nv_inference_compute_infer_duration_us", "nv_inference_count", "nv_inference_exec_count",
        "nv_inference_request_duration_us", "bentoml_service_request_total",
    } <= checked


def test_the_model_type_values_queried_are_the_ones_the_gateway_reports(scrapes):
    _, gateway_text = scrapes
    reported = scrape_values(gateway_text, "ai_model_predictions_total", "model_type")
    assert {"sentiment", "recommendations", "beat_tracker"} <= reported
    for where, expr in all_queries():
        for s in analyse(expr)[0]:
            if "model_type" in s.matchers:
                op, value = s.matchers["model_type"]
                wanted = set(value.split("|")) if op == "Re" else {value}
                assert wanted <= reported | {"judge"}, f"{where}: model_type {wanted - reported} never reported"


def test_the_drift_gauge_is_computed_once_a_baseline_exists(scrapes):
    _, gateway_text = scrapes
    assert "sentiment" in scrape_values(gateway_text, "ai_model_drift_score", "model_type")


# --- the restricted model-control API, with the deployment's own flags --------------------------------


def _triton_flag_sets() -> dict[str, list[str]]:
    sets = {"compose": compose()["services"]["triton"]["command"][1:]}
    for overlay in OVERLAYS:
        deployment = by_kind(kustomize_build(K8S / "overlays" / overlay), "Deployment")["triton"]
        (c,) = pod_spec(deployment)["containers"]
        sets[f"k8s-{overlay}"] = [a.replace("$(TRITON_ADMIN_KEY)", TEST_ENV["TRITON_ADMIN_KEY"]) for a in c["args"]]
    return sets


@pytest.mark.parametrize("source", ["compose", *(f"k8s-{o}" for o in OVERLAYS)])
def test_the_deployment_flags_start_triton_and_lock_model_control(source, tmp_path):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from djserve.process import ChildProcess, http_status
    from djserve.triton.backends import assemble_backends, check_installation, embedded_cache_dir, server_environment

    key = TEST_ENV["TRITON_ADMIN_KEY"]
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    repo = tmp_path / "models"
    repo.mkdir()
    # The deployment's flags verbatim, except where this machine differs: an empty repository on a
    # temp path, free loopback ports, the assembled backend directory, no CUDA pinned memory.
    args = []
    for a in _triton_flag_sets()[source]:
        name = a.split("=", 1)[0]
        if name == "--model-repository":
            a = f"--model-repository={repo}"
        elif name in ("--http-port", "--grpc-port", "--metrics-port"):
            a = f"{name}={ports[name[2:-5]]}"
        elif name in ("--pinned-memory-pool-byte-size", "--allow-gpu-metrics"):
            continue
        elif name == "--cache-config":  # the container's caches are in /opt/tritonserver/caches, the wheel's here
            args.append(f"--cache-directory={embedded_cache_dir()}")
        args.append(a)
    argv = [str(check_installation()), *args, f"--backend-directory={assemble_backends(tmp_path / 'backends')}",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
            "--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false"]
    child = ChildProcess("tritonserver", tmp_path / "triton.log", tail_cut="\nUsage: tritonserver")
    child.start(argv, env=server_environment())
    http = f"http://127.0.0.1:{ports['http']}"
    try:
        child.wait_until(lambda: http_status(f"{http}/v2/health/ready") == 200, 60, "ready")

        def index(headers: dict[str, str]) -> int:
            req = urllib.request.Request(f"{http}/v2/repository/index", data=b"{}", method="POST", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    json.loads(r.read())
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert index({}) == 403
        assert index({"admin-key": "wrong"}) == 403
        assert index({"admin-key": key}) == 200
        assert http_status(f"{http}/v2/health/live") == 200  # health stays open (probes)
        assert http_status(f"{http}/v2") == 200              # metadata stays open (the gateway)

        client = grpcclient.InferenceServerClient(f"127.0.0.1:{ports['grpc']}")
        try:
            with pytest.raises(InferenceServerException, match="restricted"):
                client.get_model_repository_index()
            assert list(client.get_model_repository_index(headers={"triton-grpc-protocol-admin-key": key}).models) == []
            assert client.is_server_ready()
        finally:
            client.close()
    finally:
        child.stop()
