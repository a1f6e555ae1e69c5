"""Triton stopped under a running gateway: 503 with Retry-After (never a hang), unready, then recovery."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import free_port, poll, start_gateway


@pytest.fixture(scope="module")
def own_stack(exported_repository, tmp_path_factory):
    """Triton and a gateway of this module's own, so stopping Triton disturbs no other test."""
    from djserve.triton import TritonServer, TritonSettings

    state = tmp_path_factory.mktemp("resilience")
    settings = TritonSettings(
        model_repository=exported_repository,
        backend_dir=state / "backends",
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    triton = TritonServer(settings, log_file=state / "triton.log")
    triton.start()
    triton.wait_ready()
    gateway = start_gateway(triton.grpc_url, exported_repository, state, DJSERVE_GATEWAY_TRITON_TIMEOUT_S="3")
    gateway.start()
    try:
        gateway.wait_ready()
        yield settings, triton, gateway
    finally:
        gateway.stop()
        triton.stop()


def test_triton_down_gives_503_then_the_gateway_recovers(own_stack, tmp_path_factory):
    from djserve.triton import TritonServer

    settings, triton, gateway = own_stack
    body = {"text": "This is an amazing DJ set!"}
    with httpx.Client(base_url=gateway.url, timeout=30) as http:  # a hang would fail at 30 s
        assert http.post("/ai/sentiment/analyze", json=body).status_code == 200

        triton.stop()
        unseen = {"text": "A message the gateway has never answered"}
        for path, payload in (("/ai/sentiment/analyze", unseen), ("/ai/recommendations/battles", {"userId": "test-user-123"})):
            r = http.post(path, json=payload)
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "triton_unavailable"
        # A message answered before is still answered, by the same version, from the gateway's row cache.
        cached = http.post("/ai/sentiment/analyze", json=body)
        assert cached.status_code == 200 and cached.json()["modelVersion"] == 1
        assert poll(lambda: http.get("/readyz").status_code != 200, 10)
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["triton"] is False
        # Requests that need no model still work: cold-start recommendations.
        assert http.post("/ai/recommendations/battles", json={"userId": "nobody-yet"}).status_code == 200

        again = TritonServer(settings, log_file=tmp_path_factory.mktemp("restart") / "triton.log")
        again.start()
        try:
            again.wait_ready()
            assert poll(lambda: http.get("/readyz").status_code == 200, 30), "the gateway did not recover"
            assert http.post("/ai/sentiment/analyze", json=body).status_code == 200
        finally:
            again.stop()
