"""Promotion from the MLflow registry on a running stack of this module's own (Triton + gateway).

Under continuous load: promote a judge version to 10%, ramp to 50% and 100%, complete, roll back:
no request fails and the observed share of each version follows the policy within +-3 points.
Refused candidates (parity, corrupt ONNX, failed smoke inference) leave production unchanged; the
watch rolls back a canary whose outputs moved beyond what was expected of it and completes one that
moved as expected; drift raises the gauge and warns. The candidates here are seeded weights with no
held-out evaluation, so they are promoted past the offline gate with `force` (the quality gates have
their own end-to-end test, test_promotion_gates.py).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
import torch

from djserve.traffic import bucket
from djserve.mlops import expectations
from djserve.mlops.online_gates import ExpectedShift, OnlineGateConfig
from djserve.mlops.promotion import Promoter, PromotionError, PromotionSettings
from djserve.registry import CHALLENGER, CHAMPION
from djserve.settings import Settings
from djserve.specs import EXPORTED
from exporters.architectures import judge as judge_arch
from loadtest.samples import click_track, encode
from tests.conftest import ADMIN_TOKEN, CI_LATENCY_SLACK_S, copy_committed_repository, free_port, local_stack, poll

CLIPS = [encode(click_track(bpm, 2.5, seed=i)) for i, bpm in enumerate((96, 128, 150))]


def clip_for(key: str) -> bytes:
    return CLIPS[bucket("clip", key) % len(CLIPS)]  # the same key always sends the same audio


@pytest.fixture(scope="module")
def stack(exported_repository, tmp_path_factory):
    root = tmp_path_factory.mktemp("promotion")
    repo = copy_committed_repository(root / "model_repository")
    for name in EXPORTED:
        shutil.copytree(exported_repository / name / "1", repo / name / "1")
    state = root / "state"
    with local_stack(repo, state) as running:
        promo = PromotionSettings(triton_http_url=running.triton_http_urls, gateway_url=running.gateway.url, admin_token=ADMIN_TOKEN,
                                  drain_s=1.0, watch_poll_s=0.5, watch_step_timeout_s=240,
                                  gates=OnlineGateConfig(min_requests=60, error_rate_regression=0.1, min_latencies=30, min_values=60,
                                                         latency_slack_s=CI_LATENCY_SLACK_S))
        promoter = Promoter(Settings(repository=repo, state_dir=state), promo, log=lambda line: None)
        promoter.materialize()
        yield promoter, running.gateway, repo


def register_judge(promoter: Promoter, tmp: Path, shift: float = 0.0) -> str:
    state = judge_arch.build_model(0).state_dict()  # the weights version 1 was exported from
    state["fusion_network.8.bias"] += shift
    path = tmp / f"judge-shift{shift}.pt"
    torch.save(state, path)
    rv = promoter.registry.register("judge", path, weights=str(path), parity={}, spec={})
    return f"models:/{rv.name}/{rv.version}"


class Load:
    """Clients sending judge requests continuously; every answer is kept."""

    def __init__(self, url: str, threads: int = 1):
        self.url, self.stop, self.results = url, threading.Event(), []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            n = 0
            while not self.stop.is_set():
                key = f"load-{i}-{n % 500}"
                n += 1
                r = http.post("/ai/judge/analyze", data={"battleId": key, "genre": "house"},
                              files={"audio": ("a.wav", clip_for(key))})
                self.results.append((r.status_code, r.text[:200]))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def measure(url: str, keys: list[str]) -> dict[int, float]:
    counts: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for key in keys:
            r = http.post("/ai/judge/analyze", data={"battleId": key, "genre": "house"}, files={"audio": ("a.wav", clip_for(key))})
            assert r.status_code == 200, r.text
            v = r.json()["modelVersions"]["judge"]
            counts[v] = counts.get(v, 0) + 1
    return {v: 100 * c / len(keys) for v, c in counts.items()}


def stratified_keys(family: str, n: int = 100) -> list[str]:
    """One key per 1/n of the hash space, so a p% canary takes exactly p% of them (sampling noise
    of a random key set would need thousands of requests per stage for a +-3 point check)."""
    from djserve.traffic import BUCKETS

    keys, i = {}, 0
    while len(keys) < n:
        key = f"battle-{i}"
        keys.setdefault(bucket(family, key) * n // BUCKETS, key)
        i += 1
    return [keys[k] for k in sorted(keys)]


def test_promote_ramp_complete_rollback_under_load_without_a_failed_request(stack, tmp_path):
    promoter, gateway, repo = stack
    keys = stratified_keys("judge")
    uri = register_judge(promoter, tmp_path)
    with Load(gateway.url) as load:
        new = promoter.promote("judge", uri, canary_percent=10, force=True).triton_version
        assert new == 2 and promoter.registry.alias_version("judge", CHALLENGER) is not None
        observed = {10: measure(gateway.url, keys)}
        for percent in (50, 100):
            promoter.set_canary("judge", percent)
            observed[percent] = measure(gateway.url, keys)
        promoter.complete("judge")
        observed["complete"] = measure(gateway.url, keys)
        assert promoter.policy("judge").stable == new and promoter.policy("judge").previous_stable == 1
        assert promoter.registry.alias_version("judge", CHAMPION) == int(uri.rsplit("/", 1)[1])
        assert promoter.triton.loaded_versions("judge") == [1, 2]
        promoter.rollback("judge")
        observed["rollback"] = measure(gateway.url, keys)
    failed = [r for r in load.results if r[0] != 200]
    assert not failed and len(load.results) > 20, failed[:3]
    for percent in (10, 50, 100):
        assert abs(observed[percent].get(new, 0) - percent) <= 3, (percent, observed[percent])
    assert observed["complete"] == {new: 100.0}
    assert observed["rollback"] == {1: 100.0}
    assert promoter.triton.loaded_versions("judge") == [1]
    actions = [h["action"] for h in promoter.registry.history("judge")]
    assert actions[-4:] == ["canary", "canary", "complete", "rollback"] and "promote" in actions


def test_refused_candidates_leave_production_unchanged(stack, tmp_path, monkeypatch):
    promoter, gateway, repo = stack
    before = (promoter.policies.current().model_dump(), promoter.triton.loaded_versions("judge"))
    uri = register_judge(promoter, tmp_path)

    with pytest.raises(PromotionError, match="refused at export.*parity"):
        promoter.promote("judge", uri, 10, tolerance=1e-12, force=True)

    import djserve.mlops.publish as publish

    real_export = publish.export_isolated

    def corrupt_export(*args, **kwargs):
        result = real_export(*args, **kwargs)
        (result.path / "model.onnx").write_bytes(b"this is not an onnx graph")
        return result

    monkeypatch.setattr(publish, "export_isolated", corrupt_export)
    with pytest.raises(PromotionError, match="refused"):
        promoter.promote("judge", uri, 10, force=True)
    monkeypatch.setattr(publish, "export_isolated", real_export)

    def failing_smoke(family, version, seed=0):
        raise RuntimeError("smoke inference returned NaN")

    monkeypatch.setattr(promoter.triton, "smoke", failing_smoke)
    with pytest.raises(PromotionError, match="smoke inference returned NaN"):
        promoter.promote("judge", uri, 10, force=True)

    assert (promoter.policies.current().model_dump(), promoter.triton.loaded_versions("judge")) == before
    assert {p.name for p in (repo / "judge").iterdir() if p.name.isdigit()} <= {"1", "2"}  # refused versions moved aside
    assert len(list((repo / "judge").glob(".rejected-*"))) == 2
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        assert poll(lambda: http.get("/readyz").status_code == 200, 15)


def traffic(url: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        n = 0
        while not stop.is_set():
            key = f"watch-{n}"
            n += 1
            http.post("/ai/judge/analyze", data={"battleId": key, "genre": "house"}, files={"audio": ("a.wav", clip_for(key))})


@pytest.mark.parametrize("shift, outcome", [(4.0, "rolled_back"), (0.0, "completed")])
def test_watch_rolls_back_an_unexpected_output_shift_and_completes_an_expected_one(stack, tmp_path, shift, outcome):
    """Offline, both candidates were expected to answer like the stable version; one moved its
    outputs anyway (a shifted bias: a broken export, a wrong preprocessing), the other did not."""
    promoter, gateway, repo = stack
    stable = promoter.policy("judge").stable
    uri = register_judge(promoter, tmp_path, shift=shift)
    new = promoter.promote("judge", uri, canary_percent=50, force=True).triton_version
    same = [0.4 + 0.002 * i for i in range(100)]
    expectations.save(promoter.settings.state_dir, "judge", new, ExpectedShift(source="offline", candidate=same, stable=same))
    stop = threading.Event()
    threads = [threading.Thread(target=traffic, args=(gateway.url, stop), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        result = promoter.watch("judge", steps=[50, 100])
        rollbacks = [h.get("reason") for h in promoter.registry.history("judge") if h["action"] == "rollback"]
        assert result == outcome, f"watch {result}; last rollback: {rollbacks[-1:] }"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    fp = promoter.policy("judge")
    assert fp.canary is None and fp.stable == (stable if outcome == "rolled_back" else new)
    gates = [h for h in promoter.registry.history("judge") if h["action"] == "gate"]
    assert gates and gates[-1]["verdict"] == ("fail" if shift else "pass")
    shift_check = next(c for c in gates[-1]["checks"] if c["name"] == "output_shift")
    assert shift_check["verdict"] == ("fail" if shift else "pass")


def test_drift_gauge_and_warning_follow_the_input_stream(stack):
    """Sentiment (no other traffic in this stack): baseline from a steady stream, then steady, then shifted."""
    from djserve.drift import BaselineStore

    promoter, gateway, repo = stack
    version = promoter.policy("sentiment").stable
    steady = ["This is an amazing DJ set!"]  # one message: a constant output, the baseline exactly
    # Also one message, another constant: every shifted output lies on one side of the baseline, so the
    # KS distance is exactly the shifted share of the window whatever the weights (several distinct
    # messages could straddle the baseline value and cancel out).
    shifted = ["zzq xkcd qwv plmn " * 3]
    with httpx.Client(base_url=gateway.url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        def send(texts: list[str], n: int) -> None:
            for i in range(n):
                assert http.post("/ai/sentiment/analyze", json={"text": texts[i % len(texts)]}).status_code == 200

        send(steady, 100)
        values = http.get("/admin/stats?family=sentiment").json()["versions"][str(version)]["values"]
        BaselineStore(promoter.settings.state_dir / "drift").write("sentiment", values, version=version)
        send(steady, 100)
        gauge = _gauge(http.get("/metrics").text, version)
        assert gauge is not None and gauge < 0.1
        assert "drift detected in sentiment" not in gateway.child.log_tail(2000)
        send(shifted, 300)
        assert _gauge(http.get("/metrics").text, version) > 0.4  # 300 of the 500 in the window moved
    assert "drift detected in sentiment" in gateway.child.log_tail(2000)


def _gauge(metrics: str, version: int) -> float | None:
    for line in metrics.splitlines():
        if line.startswith("ai_model_drift_score{") and 'model_type="sentiment"' in line and f'version="{version}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_restart_serves_the_same_versions_and_shares(exported_repository, tmp_path):
    """After a stop, `djserve serve` (Promoter.restore) loads exactly the policy's versions again;
    the repository's own `latest 2` would have loaded 2 and 3."""
    from djserve.traffic import FamilyPolicy, TrafficPolicy
    from djserve.triton import TritonServer, TritonSettings

    repo = copy_committed_repository(tmp_path / "model_repository")
    for name in EXPORTED:
        shutil.copytree(exported_repository / name / "1", repo / name / "1")
    for v in (2, 3):
        shutil.copytree(exported_repository / "judge" / "1", repo / "judge" / str(v))
    state = tmp_path / "state"
    policy = {"judge": FamilyPolicy(stable=1, canary=3, canary_percent=20)}
    triton = TritonServer(TritonSettings(model_repository=repo, backend_dir=tmp_path / "backends", http_port=free_port(),
                                         grpc_port=free_port(), metrics_port=free_port()), log_file=tmp_path / "t.log")
    with triton:
        promoter = Promoter(Settings(repository=repo, state_dir=state), PromotionSettings(triton_http_url=triton.http_url))
        assert promoter.triton.loaded_versions("judge") == [2, 3]  # what the repository alone loads
        promoter.policies.write(TrafficPolicy(families={**promoter.policies.current().families, **policy}))
        promoter.restore()
        assert promoter.triton.loaded_versions("judge") == [1, 3]
        assert promoter.policy("judge") == policy["judge"]
