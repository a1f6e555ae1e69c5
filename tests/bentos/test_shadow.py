"""Shadow traffic and fault injection in the gateway's backend, against a fake Triton client."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from bentos.backend import ModelBackend
from bentos.errors import GatewayError
from bentos.monitoring import PredictionMonitor
from bentos.settings import FaultSpec, GatewaySettings
from bentos.shadow import ShadowMirror, decision
from djserve.traffic import FamilyPolicy, Route
from tests.bentos.fakes import FakeTriton, default_outputs, settings, write_policy


@pytest.fixture(autouse=True)
def _single_process_prometheus(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


def sample(name: str, **labels) -> float:
    import prometheus_client

    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def sentiment_inputs(rows: list[list[int]]) -> dict[str, np.ndarray]:
    width = max(len(r) for r in rows)
    ids = np.ones((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return {"input_ids": ids, "attention_mask": mask}


def make_backend(tmp_path, fake: FakeTriton, **overrides) -> ModelBackend:
    s = settings(tmp_path, **overrides)
    write_policy(s, sentiment=FamilyPolicy(stable=1, shadow=2, shadow_percent=100),
                 recommender=FamilyPolicy(stable=3, shadow=4, shadow_percent=100))
    return ModelBackend(s, fake)


def test_the_caller_gets_the_stable_answer_and_the_shadow_pair_is_recorded_apart(tmp_path):
    def outputs(model, inputs, version):  # v2 answers differently: its answer must never come back
        out = default_outputs(model, inputs, version)
        return {"logits": out["logits"][:, ::-1].copy()} if version == 2 else out

    fake = FakeTriton(outputs)
    backend = make_backend(tmp_path, fake)
    inputs = sentiment_inputs([[0, 5, 2]])  # sum 7 -> label 1 (neutral) on v1; reversed on v2 -> still 1

    async def main():
        r = backend.route("sentiment", "any key")
        assert r == Route("sentiment", 1, canary=False, pinned=False, shadow=2)
        out = await backend.infer("sentiment", inputs, r)
        await backend.shadow.drain()
        return out

    out = asyncio.run(main())
    np.testing.assert_array_equal(out["logits"], default_outputs("sentiment", inputs, 1)["logits"])
    assert fake.versions_called("sentiment") == [1, 2]
    stats = backend.monitor.stats("sentiment", backend.policies.current().families["sentiment"])
    assert set(stats.versions) == {"1"}, "shadow outcomes must not enter the versions' stats"
    assert stats.versions["1"].requests_total == 1
    sh = stats.shadow
    assert (sh.stable, sh.shadow, sh.mirrored_total, sh.errors_total, sh.dropped_total, sh.pairs) == (1, 2, 1, 0, 0, 1)
    assert sh.agreement == 1.0  # the same label (neutral) from both


def test_a_pinned_or_canary_route_is_never_mirrored(tmp_path):
    fake = FakeTriton()
    backend = make_backend(tmp_path, fake)

    async def main():
        await backend.infer("sentiment", sentiment_inputs([[4]]), backend.route("sentiment", "k", pinned=1))
        await backend.shadow.drain()

    asyncio.run(main())
    assert fake.versions_called("sentiment") == [1]


def test_a_full_queue_drops_and_counts_and_never_blocks_the_caller(tmp_path):
    fake = FakeTriton()
    fake.hold = {4}  # the shadow hangs
    backend = make_backend(tmp_path, fake, shadow_queue_size=1)
    before = sample("ai_shadow_requests_total", model_type="recommender", version="4", outcome="dropped")
    inputs = {"item_ids": np.arange(5).reshape(-1, 1)}

    async def main():
        r = backend.route("recommender", "user")
        for _ in range(4):  # the worker takes one, the queue holds one, two are dropped
            await asyncio.wait_for(backend.infer("recommender", inputs, r), 1.0)
            await asyncio.sleep(0.01)
        fake.release.set()
        await backend.shadow.drain()

    asyncio.run(main())
    sh = backend.monitor.stats("recommender").shadow
    assert sh.dropped_total == 2 and sh.mirrored_total == 2 and sh.pairs == 2
    assert sample("ai_shadow_requests_total", model_type="recommender", version="4", outcome="dropped") - before == 2
    assert fake.versions_called("recommender") == [3, 4, 3, 3, 3, 4]


def test_shadow_failures_are_counted_and_never_raised(tmp_path, caplog):
    fake = FakeTriton()
    fake.fail[("sentiment", 2)] = InferenceServerException("boom", status="StatusCode.INTERNAL")
    backend = make_backend(tmp_path, fake)
    before = sample("ai_shadow_requests_total", model_type="sentiment", version="2", outcome="error")

    async def main():
        r = backend.route("sentiment", "k")
        outs = [await backend.infer("sentiment", sentiment_inputs([[4, 5]]), r) for _ in range(3)]
        await backend.shadow.drain()
        fake.fail[("sentiment", 2)] = RuntimeError("not even a Triton error")
        outs.append(await backend.infer("sentiment", sentiment_inputs([[4]]), r))
        await backend.shadow.drain()
        return outs

    with caplog.at_level(logging.WARNING, logger="djserve.shadow"):
        outs = asyncio.run(main())
    assert len(outs) == 4
    sh = backend.monitor.stats("sentiment").shadow
    assert (sh.mirrored_total, sh.errors_total, sh.pairs, sh.agreement) == (4, 4, 0, None)
    assert sample("ai_shadow_requests_total", model_type="sentiment", version="2", outcome="error") - before == 4
    assert len([r for r in caplog.records if "shadow sentiment v2 failed" in r.getMessage()]) == 1  # rate limited
    v1 = backend.monitor.stats("sentiment").versions["1"]
    assert (v1.requests_total, v1.errors_total) == (4, 0)


def test_a_bug_in_the_mirror_is_logged_and_the_worker_keeps_going(tmp_path):
    fake = FakeTriton()
    backend = make_backend(tmp_path, fake)
    real = backend.monitor.observe_shadow
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ZeroDivisionError("bug")
        return real(*args, **kwargs)

    backend.monitor.observe_shadow = flaky

    async def main():
        r = backend.route("sentiment", "k")
        for _ in range(2):
            await backend.infer("sentiment", sentiment_inputs([[4]]), r)
            await backend.shadow.drain()

    asyncio.run(main())
    assert backend.shadow.internal_errors == 1
    assert backend.monitor.stats("sentiment").shadow.pairs == 1


def test_submit_never_raises_even_without_a_loop(tmp_path):
    mirror = ShadowMirror(lambda *a: None, PredictionMonitor(tmp_path))
    assert mirror.submit("judge", {}, 1, 2, {}, 0.5, 0.01) is False  # no running loop: counted, not raised
    assert mirror.internal_errors == 1


# --- the comparison figures ------------------------------------------------------------------------


def test_scores_agree_by_ranking_consecutive_pairs_and_diffs_are_exact(tmp_path):
    m = PredictionMonitor(tmp_path)
    stable = [0.1, 0.5, 0.3, 0.9]
    shadow = [0.2, 0.4, 0.45, 0.95]  # up/up, down/UP (disagrees), up/up
    for i, (s, h) in enumerate(zip(stable, shadow)):
        m.observe_shadow("judge", 1, 2, ok=True, stable_value=s, shadow_value=h,
                         stable_latency_s=0.01 * (i + 1), shadow_latency_s=0.1 * (i + 1))
    m.observe_shadow("judge", 1, 2, ok=False, stable_latency_s=0.5, shadow_latency_s=9.0)
    sh = m.stats("judge").shadow
    assert sh.pairs == 4 and sh.mirrored_total == 5 and sh.errors_total == 1
    assert sh.agreement == pytest.approx(2 / 3)
    diff = np.array(shadow) - np.array(stable)  # 0.1, -0.1, 0.15, 0.05
    assert sh.diff_mean == pytest.approx(0.05)
    assert sh.diff_quantiles == pytest.approx({"p05": np.quantile(diff, 0.05), "p50": 0.075, "p95": np.quantile(diff, 0.95)})
    assert sh.latency_p95_s == pytest.approx({"stable": np.quantile([0.01, 0.02, 0.03, 0.04], 0.95),
                                              "shadow": np.quantile([0.1, 0.2, 0.3, 0.4], 0.95)})
    assert sh.stable_values == stable and sh.shadow_values == shadow


def test_ties_within_float_noise_rank_the_same():
    from bentos.monitoring import RANK_TIE

    m = PredictionMonitor("/nonexistent")
    m.observe_shadow("creative", 1, 2, ok=True, stable_value=0.5, shadow_value=0.5)
    m.observe_shadow("creative", 1, 2, ok=True, stable_value=0.5, shadow_value=0.5 + RANK_TIE / 2)
    assert m.stats("creative").shadow.agreement == 1.0


def test_decisions_agree_per_pair_and_the_gauge_follows(tmp_path):
    """Sentiment: two requests, the shadow flips the label of the second one -> agreement 0.5."""

    def outputs(model, inputs, version):
        logits = default_outputs(model, inputs, version)["logits"]
        if version == 2 and inputs["input_ids"].shape[1] == 2:
            logits = np.roll(logits, 1, axis=1)
        return {"logits": logits}

    backend = make_backend(tmp_path, FakeTriton(outputs))

    async def main():
        r = backend.route("sentiment", "k")
        await backend.infer("sentiment", sentiment_inputs([[4, 6, 7]]), r)
        await backend.infer("sentiment", sentiment_inputs([[4, 5]]), r)
        await backend.shadow.drain()

    asyncio.run(main())
    sh = backend.monitor.stats("sentiment").shadow
    assert sh.pairs == 2 and sh.agreement == 0.5
    assert sample("ai_shadow_agreement", model_type="sentiment", version="2") == 0.5
    assert sample("ai_shadow_score_difference_count", model_type="sentiment", version="2") >= 2


def test_decision_per_family():
    logits = np.array([[0.1, 2.0, 0.3], [3.0, 0.0, 0.0]])
    assert decision("sentiment", {"logits": logits}) == ("neutral", "negative")
    assert decision("recommender", {"score": np.array([[0.2], [0.9], [0.1]])}) == 1
    assert decision("judge", {"component_scores": np.ones((1, 4))}) is None


def test_stats_report_the_policys_shadow_even_before_any_pair(tmp_path):
    m = PredictionMonitor(tmp_path)
    assert m.stats("judge", FamilyPolicy(stable=1)).shadow is None
    sh = m.stats("judge", FamilyPolicy(stable=1, shadow=5, shadow_percent=10)).shadow
    assert (sh.stable, sh.shadow, sh.pairs, sh.agreement) == (1, 5, 0, None)


# --- fault injection --------------------------------------------------------------------------------


def test_fault_injection_fails_and_slows_only_that_version_and_the_monitor_sees_it(tmp_path, caplog):
    fake = FakeTriton()
    with caplog.at_level(logging.WARNING, logger="bentos.backend"):
        backend = make_backend(tmp_path, fake, fault_injection={"sentiment": FaultSpec(version=1, error_rate=1.0, delay_s=0.05)})
    assert any("FAULT INJECTION" in r.getMessage() for r in caplog.records)

    async def main():
        with pytest.raises(GatewayError) as info:
            await backend.infer("sentiment", sentiment_inputs([[4]]), Route("sentiment", 1, False, False, shadow=2))
        ok = await backend.infer("sentiment", sentiment_inputs([[4]]), Route("sentiment", 3, False, True))
        await backend.shadow.drain()
        return info.value, ok

    exc, ok = asyncio.run(main())
    assert (exc.status, exc.code) == (502, "injected_fault") and "logits" in ok
    v1 = backend.monitor.stats("sentiment").versions["1"]
    assert (v1.requests_total, v1.errors_total) == (1, 1) and v1.latencies_s[0] >= 0.05
    assert fake.versions_called("sentiment") == [3], "an injected fault never reaches Triton, and a failed call is not mirrored"


def test_fault_injection_rate_and_shadow_calls_are_spared(tmp_path):
    fake = FakeTriton()
    backend = make_backend(tmp_path, fake, fault_injection={"sentiment": FaultSpec(version=2, error_rate=0.3)})
    backend.random.seed(7)

    async def main():
        failed = 0
        for _ in range(1000):
            try:
                await backend.infer("sentiment", sentiment_inputs([[4]]), Route("sentiment", 2, False, False))
            except GatewayError:
                failed += 1
        await backend.infer("sentiment", sentiment_inputs([[4]]), backend.route("sentiment", "k"))  # mirrored to v2
        await backend.shadow.drain()
        return failed

    failed = asyncio.run(main())
    assert 250 <= failed <= 350
    assert backend.monitor.stats("sentiment").shadow.errors_total == 0


def test_fault_injection_reads_json_from_the_environment(monkeypatch):
    monkeypatch.setenv("DJSERVE_GATEWAY_FAULT_INJECTION", '{"judge": {"version": 3, "error_rate": 0.3, "delay_s": 0.0}}')
    assert GatewaySettings().fault_injection == {"judge": FaultSpec(version=3, error_rate=0.3)}
    monkeypatch.delenv("DJSERVE_GATEWAY_FAULT_INJECTION")
    assert GatewaySettings().fault_injection == {}
