"""Live-traffic monitoring: windows, stats, summaries, baselines and drift."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from bentos.monitoring import WINDOW, DriftResult, PredictionMonitor, summarize
from djserve.live_stats import FamilyStats


@pytest.fixture(autouse=True)
def _single_process_prometheus(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


@pytest.fixture
def monitor(tmp_path) -> PredictionMonitor:
    return PredictionMonitor(tmp_path / "baselines")


def gauge(family: str, version: int) -> float | None:
    import prometheus_client

    return prometheus_client.REGISTRY.get_sample_value(
        "ai_model_drift_score", {"model_type": family, "version": str(version)}
    )


def feed(m: PredictionMonitor, family: str, version: int, values) -> None:
    for v in values:
        m.observe(family, version, float(v), 0.01, True)


def drift_records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "djserve.drift" and r.levelno == level]


# --- window and stats ----------------------------------------------------------------------------


def test_window_keeps_only_the_last_1000(monitor):
    assert WINDOW == 1000
    feed(monitor, "judge", 1, range(1500))
    s = monitor.stats("judge").versions["1"]
    assert s.count == 1000 and s.requests_total == 1500 and s.errors_total == 0
    assert s.values == [float(v) for v in range(500, 1500)]
    assert len(s.latencies_s) == 1000


def test_stats_counts_errors_and_latency_quantiles(monitor):
    # 100 requests with latencies 0.01..1.00 s; every 10th one failed (value None).
    for i in range(1, 101):
        ok = i % 10 != 0
        monitor.observe("technical", 3, 0.5 if ok else None, i / 100, ok)
    monitor.observe("technical", 4, 0.9, 0.2, True)
    out = monitor.stats("technical")
    assert isinstance(out, FamilyStats) and out.family == "technical"
    assert set(out.versions) == {"3", "4"}
    s = out.versions["3"]
    assert s.count == 100 and s.requests_total == 100
    assert s.errors == 10 and s.errors_total == 10
    assert s.error_rate == pytest.approx(0.1)
    assert s.latency_p95_s == pytest.approx(np.quantile(np.arange(1, 101) / 100, 0.95))
    assert s.latency_p95_s == pytest.approx(0.9505)
    assert s.latency_p50_s == pytest.approx(0.505)
    assert len(s.values) == 90 and set(s.values) == {0.5}
    assert out.versions["4"].count == 1 and out.versions["4"].errors == 0
    assert out.shadow is None and s.labels.total == 0
    assert FamilyStats.model_validate_json(out.model_dump_json()) == out  # JSON round trip


def test_totals_count_since_start_while_the_window_slides(tmp_path):
    m = PredictionMonitor(tmp_path, window=10)
    for i in range(25):
        m.observe("judge", 2, 0.5, 0.01, ok=i % 5 != 0)
    s = m.stats("judge").version(2)
    assert (s.requests_total, s.errors_total) == (25, 5)
    assert (s.count, s.errors) == (10, 2)
    assert m.stats("judge").version(7).requests_total == 0  # unseen: all zero


def test_labels_are_kept_per_version_with_a_recent_window(tmp_path):
    m = PredictionMonitor(tmp_path, window=3)
    for score in (1.0, 0.0, 1.0, 1.0):
        m.add_label("sentiment", 2, "accuracy", score)
    m.add_label("sentiment", 1, "accuracy", 0.0)
    out = m.stats("sentiment")
    assert out.versions["2"].labels.model_dump() == {"total": 4, "metric": "accuracy", "scores": [0.0, 1.0, 1.0],
                                                     "mean": pytest.approx(2 / 3)}
    assert out.versions["1"].labels.mean == 0.0 and out.versions["1"].count == 0  # labels without traffic seen


def test_stats_of_an_unseen_family_is_empty(monitor):
    monitor.observe("judge", 1, 0.5, 0.1, True)
    assert monitor.stats("creative") == FamilyStats(family="creative")


def test_failed_requests_do_not_enter_drift_values(monitor):
    monitor.observe("judge", 1, 0.3, 0.1, False)  # a value on a failed request is ignored
    monitor.observe("judge", 1, None, 0.1, False)
    monitor.observe("judge", 1, 0.7, 0.1, True)
    s = monitor.stats("judge").versions["1"]
    assert s.count == 3 and s.errors == 2 and s.values == [0.7]


# --- summarize -----------------------------------------------------------------------------------


def test_summarize_each_family():
    assert summarize("judge", {"component_scores": np.array([[0.2, 0.4, 0.6]], np.float32)}) == pytest.approx(0.4)
    assert summarize("technical", {"technical_scores": np.array([[0.1, 0.3], [0.5, 0.7]])}) == pytest.approx(0.4)
    assert summarize("creative", {"creative_scores": np.array([[1.0, 0.0, 0.5, 0.5]])}) == pytest.approx(0.5)
    assert summarize("sentiment", {"logits": np.array([[0.0, 0.0, 10.0]], np.float32)}) == pytest.approx(1.0, abs=1e-3)
    assert summarize("sentiment", {"logits": np.array([[10.0, 0.0, 0.0]])}) == pytest.approx(0.0, abs=1e-3)
    assert summarize("sentiment", {"logits": np.array([[1.0, 1.0, 1.0]])}) == pytest.approx(1 / 3)
    assert summarize("recommender", {"score": np.array([[0.2], [0.4], [0.9]], np.float32)}) == pytest.approx(0.5)
    assert summarize(
        "beat_tracker",
        {"beat_probability": np.array([[0.8], [0.6]]), "beat_activation": np.zeros((2, 5, 1))},
    ) == pytest.approx(0.7)


def test_summarize_sentiment_is_stable_for_large_logits():
    assert summarize("sentiment", {"logits": np.array([[0.0, 0.0, 1000.0], [1000.0, 0.0, 0.0]])}) == pytest.approx(0.5)


def test_summarize_rejects_unknown_family_and_missing_output():
    with pytest.raises(ValueError):
        summarize("nope", {"x": np.zeros((1, 1))})
    with pytest.raises(ValueError):
        summarize("judge", {"technical_scores": np.zeros((1, 3))})


# --- baselines -----------------------------------------------------------------------------------


def test_baseline_set_and_read(monitor, tmp_path):
    assert monitor.baseline("judge") is None
    path = monitor.set_baseline("judge", [0.1, 0.2, 0.3], version=2, source="export v2")
    assert path == tmp_path / "baselines" / "judge.json"
    doc = json.loads(path.read_text())
    assert doc["family"] == "judge" and doc["version"] == 2 and doc["source"] == "export v2"
    assert doc["values"] == [0.1, 0.2, 0.3] and doc["created_at"]
    assert monitor.baseline("judge") == [0.1, 0.2, 0.3]
    assert [p.name for p in path.parent.iterdir()] == ["judge.json"]  # no temp file left


def test_baseline_written_by_another_instance_is_picked_up(tmp_path):
    gateway = PredictionMonitor(tmp_path)
    cli = PredictionMonitor(tmp_path)
    assert gateway.baseline("creative") is None
    cli.set_baseline("creative", [0.5] * 10, version=1)
    assert gateway.baseline("creative") == [0.5] * 10
    cli.set_baseline("creative", [0.25] * 20, version=2)  # replaced while the gateway runs
    assert gateway.baseline("creative") == [0.25] * 20


def test_baseline_rejects_path_like_family(monitor):
    with pytest.raises(ValueError):
        monitor.set_baseline("../evil", [0.1])


# --- drift ---------------------------------------------------------------------------------------


def test_drift_is_none_without_baseline_or_enough_samples(tmp_path):
    m = PredictionMonitor(tmp_path, min_samples=100)
    rng = np.random.default_rng(1)
    feed(m, "judge", 1, rng.normal(0.7, 0.05, 99))
    assert m.drift("judge", 1) is None  # no baseline
    m.set_baseline("judge", rng.normal(0.5, 0.05, 1000).tolist())
    assert m.drift("judge", 1) is None  # 99 < min_samples
    assert m.check_drift("judge", 1) is None
    feed(m, "judge", 1, [0.7])
    assert isinstance(m.drift("judge", 1), DriftResult)


def test_shifted_stream_drifts_once_and_recovers(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="djserve.drift")
    rng = np.random.default_rng(7)
    m = PredictionMonitor(tmp_path)
    baseline = rng.normal(0.5, 0.05, 1000)
    m.set_baseline("sentiment", baseline.tolist(), version=1)

    feed(m, "sentiment", 2, rng.normal(0.7, 0.05, 3000))  # 60 automatic checks
    result = m.check_drift("sentiment", 2)
    assert result is not None
    assert result.drifted and result.p_value < 0.05
    assert result.family == "sentiment" and result.version == 2
    assert result.samples == 1000 and result.baseline_samples == 1000
    assert gauge("sentiment", 2) == pytest.approx(result.statistic)
    assert gauge("sentiment", 2) > 0.5
    assert len(drift_records(caplog, logging.WARNING)) == 1
    assert drift_records(caplog, logging.INFO) == []

    # The stream returns to the baseline (its very values, reordered, so the end state is exact).
    feed(m, "sentiment", 2, rng.permutation(baseline))
    result = m.check_drift("sentiment", 2)
    assert not result.drifted and result.p_value >= 0.05
    assert gauge("sentiment", 2) == pytest.approx(0.0)
    assert len(drift_records(caplog, logging.INFO)) == 1
    assert len(drift_records(caplog, logging.WARNING)) == 1


def test_drift_check_runs_from_observe(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="djserve.drift")
    rng = np.random.default_rng(3)
    m = PredictionMonitor(tmp_path, min_samples=100, check_every=50)
    m.set_baseline("recommender", rng.normal(0.5, 0.05, 1000).tolist())
    shifted = rng.normal(0.8, 0.05, 100)
    feed(m, "recommender", 5, shifted[:99])  # checked at 50: too few samples
    assert gauge("recommender", 5) is None
    assert drift_records(caplog, logging.WARNING) == []
    feed(m, "recommender", 5, shifted[99:])  # the 100th observation runs the check
    assert gauge("recommender", 5) > 0.5
    assert len(drift_records(caplog, logging.WARNING)) == 1


def test_steady_stream_does_not_drift(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="djserve.drift")
    rng = np.random.default_rng(11)
    m = PredictionMonitor(tmp_path)
    m.set_baseline("beat_tracker", rng.normal(0.5, 0.05, 1000).tolist())
    feed(m, "beat_tracker", 1, rng.normal(0.5, 0.05, 2000))
    result = m.check_drift("beat_tracker", 1)
    assert result is not None and not result.drifted and result.p_value >= 0.05
    assert gauge("beat_tracker", 1) < 0.1
    assert drift_records(caplog, logging.WARNING) == []
    assert drift_records(caplog, logging.INFO) == []
