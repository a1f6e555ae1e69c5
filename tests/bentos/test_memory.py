"""The gateway worker does not grow with the requests it has answered (the soak of loadtest/RESULTS.md).

The whole ASGI app BentoML serves (`Gateway.to_asgi()`: its OpenTelemetry, metrics, timeout and
context middlewares around the FastAPI routes) runs in process against a fake Triton; after a
warm-up, tracemalloc measures what further requests leave behind. Before bentos.timeouts, BentoML's
900 s request timer kept every request's context (its OpenTelemetry span, ~5 KB) alive for 15 minutes.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import gc
import random
import tracemalloc
import weakref
from typing import Mapping

import numpy as np
import pytest

from tests.bentos.fakes import FakeTriton, default_outputs, write_policy, write_tokenizer

CHAT = ["what a great set", "awful mix", "the drop is amazing", "ok set", "what a terrible drop", "an amazing mix"]


@pytest.fixture(autouse=True)
def _single_process_prometheus(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


# --- the timer itself --------------------------------------------------------------------------------


class _Marker:
    pass


def test_the_request_timeout_holds_nothing_of_a_finished_request():
    """BentoML's TimeoutMiddleware, as the gateway installs it: once a request is answered, nothing
    of its context survives and no timer is left pending for it (the unpatched middleware keeps a
    copy of the context in a 900 s timer)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    from bentos import timeouts

    assert timeouts.install()
    var: contextvars.ContextVar[object] = contextvars.ContextVar("span")

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TimeoutMiddleware(app, timeout=900)

    async def one_request() -> weakref.ref:
        marker = _Marker()
        var.set(marker)  # what an outer middleware (OpenTelemetry) leaves in the context
        sent = []

        async def send(message):
            sent.append(message)

        await middleware({"type": "http"}, None, send)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        return weakref.ref(marker)

    async def main() -> tuple[list[weakref.ref], int]:
        loop = asyncio.get_running_loop()
        refs = [await asyncio.create_task(one_request()) for _ in range(200)]
        await asyncio.sleep(0)
        pending = [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
        return refs, len(pending)

    refs, pending = asyncio.run(main())
    gc.collect()
    assert sum(r() is not None for r in refs) == 0, "finished requests' contexts are still referenced"
    assert pending == 0


def test_a_request_past_its_timeout_is_still_a_504():
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    from bentos import timeouts

    timeouts.install()

    async def slow(scope, receive, send):
        await asyncio.sleep(5)

    async def main() -> list[dict]:
        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b""}

        await TimeoutMiddleware(slow, timeout=0.05)({"type": "http"}, receive, send)
        return sent

    sent = asyncio.run(main())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 504


# --- the whole gateway app ---------------------------------------------------------------------------


def _outputs(model: str, inputs: Mapping[str, np.ndarray], version: int) -> dict[str, np.ndarray]:
    if model == "beat_tracker":
        batch, frames = inputs["mel_frames"].shape[:2]
        activation = np.zeros((batch, frames, 1), np.float32)
        activation[:, ::22] = 0.9
        return {"beat_activation": activation, "beat_probability": np.full((batch, 1), 0.8, np.float32)}
    return default_outputs(model, inputs, version)


class _QuietFake(FakeTriton):
    """The fake Triton without its call log (which grows by design)."""

    async def infer(self, model, inputs, version=None):
        return self.outputs(model, inputs, version)


@pytest.fixture
def gateway_app(tmp_path, monkeypatch):
    """(TestClient of the app BentoML serves, the Gateway instance) with a fake Triton."""
    from _bentoml_sdk.service import get_current_service, set_current_service
    from starlette.testclient import TestClient

    from bentos.settings import GatewaySettings

    env = {
        "DJSERVE_GATEWAY_REPOSITORY": tmp_path / "repo",
        "DJSERVE_GATEWAY_POLICY_FILE": tmp_path / "state" / "traffic_policy.json",
        "DJSERVE_GATEWAY_DRIFT_BASELINE_DIR": tmp_path / "state" / "drift",
        "DJSERVE_GATEWAY_PREDICTIONS_DIR": tmp_path / "state" / "predictions",
        "DJSERVE_GATEWAY_SUPERVISION_FILE": tmp_path / "state" / "supervision.json",
        # a full feedback index from the warm-up on: its (bounded) growth is not what is measured here
        "DJSERVE_GATEWAY_FEEDBACK_INDEX_SIZE": 50,
        "BENTOML_HOME": tmp_path / "bentoml",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    (tmp_path / "repo").mkdir()
    write_tokenizer(tmp_path / "repo", 1)
    write_policy(GatewaySettings())
    try:
        previous = get_current_service()
    except Exception:  # noqa: BLE001 - none yet
        previous = None

    from bentos.service import Gateway

    app = Gateway.to_asgi(is_main=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        gw = get_current_service()
        real, gw.backend.client = gw.backend.client, _QuietFake(_outputs)
        client.portal.call(real.close)  # never connected: the fake answers
        yield client, gw
    gw.predictions.close()
    set_current_service(previous)


def test_answered_requests_leave_nothing_behind_in_the_gateway(gateway_app):
    from loadtest.samples import click_wav

    client, gw = gateway_app
    rng = random.Random(0)
    chunk = base64.b64encode(click_wav(1.0)).decode("ascii")
    users = sorted(gw.catalogue.known_users)
    calls = {
        "sentiment": lambda: client.post("/ai/sentiment/analyze", json={"text": rng.choice(CHAT)}),
        "batch": lambda: client.post("/ai/sentiment/analyze/batch", json={"messages": [{"text": t} for t in rng.choices(CHAT, k=8)]}),
        "recommendations": lambda: client.post("/ai/recommendations/battles", json={"userId": rng.choice(users), "limit": 10}),
        "live": lambda: client.post("/ai/live/beats", json={"streamId": f"s-{rng.randrange(10**6)}",
                                                             "audioData": {"base64": chunk, "format": "wav"}}),
        "health": lambda: client.get("/readyz"),
    }
    mix = ["sentiment"] * 12 + ["batch"] * 2 + ["recommendations"] * 5 + ["live"] * 2 + ["health"]

    def requests(n: int) -> None:
        for _ in range(n):
            task = rng.choice(mix)
            r = calls[task]()
            assert r.status_code == 200, (task, r.status_code, r.text[:300])

    requests(120)  # caches, pools, the routes' first calls, a full feedback index
    gc.collect()
    tracemalloc.start(6)
    try:
        requests(20)
        gc.collect()
        base = tracemalloc.take_snapshot()
        measured = 300
        requests(measured)
        gc.collect()
        grown = tracemalloc.take_snapshot().compare_to(base, "traceback")
    finally:
        tracemalloc.stop()
    per_request = sum(d.size_diff for d in grown) / measured
    # Left per request now: ~200 bytes, floats in the monitor's windows (bounded at 1,000 per version).
    # Before bentos.timeouts: ~4,900 bytes (the request's span and context, held by a 900 s timer).
    top = "\n".join(f"{d.size_diff / 1024:+.1f} KiB {d.count_diff:+d} blocks\n  " + "\n  ".join(d.traceback.format()[-6:])
                    for d in grown[:3])
    assert per_request < 1000, f"{per_request:.0f} bytes per answered request stay allocated; the top:\n{top}"
