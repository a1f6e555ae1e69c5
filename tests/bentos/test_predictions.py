"""The prediction log and the feedback join, without a gateway (bentos.predictions)."""

from __future__ import annotations

import json

import pytest

from bentos.predictions import KindMismatch, LabelMismatch, PredictionStore, UnknownRequest
from djserve.prediction_log import FeedbackRecord, PredictionRecord, read


@pytest.fixture(autouse=True)
def _single_process_prometheus(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


def test_the_log_rotates_within_its_bounds_and_the_index_keeps_the_newest(tmp_path):
    store = PredictionStore(tmp_path, max_bytes=2000, keep_files=3, index_size=50)
    for i in range(300):
        assert store.record(f"r{i}", "sentiment", 1, "/ai/sentiment/analyze", "ab" * 32,
                            {"labels": ["positive"], "versions": [1]}) is not None
    files = store.predictions.files()
    assert len(files) == 3, files
    assert all(f.stat().st_size <= 2000 for f in files)
    kept = [r.request_id for r in read(tmp_path, "predictions", PredictionRecord)]
    assert kept == [f"r{i}" for i in range(300 - len(kept), 300)] and 10 < len(kept) < 60  # the newest, in order
    assert len(store) == 50
    assert store.lookup("r249") is None and store.lookup("r250").request_id == "r250"
    assert store.lookup("r299").outputs == {"labels": ["positive"], "versions": [1]}


def test_logging_failures_never_raise_and_are_counted(tmp_path):
    import prometheus_client

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    store = PredictionStore(blocker)
    before = prometheus_client.REGISTRY.get_sample_value("ai_prediction_log_errors_total", {"log": "predictions"}) or 0
    assert store.record("r1", "judge", 1, "/ai/judge/analyze", "00", {"overall_score": 0.5}) is None
    assert store.record(None, "judge", 1, "/ai/judge/analyze", "00", {"overall_score": 0.5}) is None
    assert store.errors == 2
    assert prometheus_client.REGISTRY.get_sample_value("ai_prediction_log_errors_total", {"log": "predictions"}) - before == 2
    rec = FeedbackRecord(request_id="r1", time=0, family="judge", version=1, kind="judge_score", value=0.5, metric="m", score=0)
    assert store.append_feedback(rec) is False and store.errors == 3


@pytest.fixture
def store(tmp_path) -> PredictionStore:
    s = PredictionStore(tmp_path)
    s.record("sent", "sentiment", 1, "/ai/sentiment/analyze/batch", "00",
             {"labels": ["positive", "negative", "neutral"], "versions": [1, 2, 1]})
    s.record("sheet", "judge", 3, "/ai/judge/analyze", "00", {"overall_score": 0.75})
    s.record("battle", "judge", 3, "/ai/judge/battle", "00", {"winner": "dj-a"})
    s.record("recs", "recommender", 2, "/ai/recommendations/battles", "00", {"battle_ids": ["b-1", "b-2", "b-3"]})
    return s


@pytest.mark.parametrize(
    "request_id, kind, value, index, expected",
    [
        ("sent", "sentiment_label", "positive", 0, ("sentiment", 1, "accuracy", 1.0)),
        ("sent", "sentiment_label", "positive", 1, ("sentiment", 2, "accuracy", 0.0)),  # message 1 went to v2
        ("sheet", "judge_score", 0.5, 0, ("judge", 3, "neg_abs_error", -0.25)),
        ("battle", "battle_winner", "dj-b", 0, ("judge", 3, "accuracy", 0.0)),
        ("recs", "recommendation_click", "b-2", 0, ("recommender", 2, "reciprocal_rank", 0.5)),
        ("recs", "recommendation_click", "b-99", 0, ("recommender", 2, "reciprocal_rank", 0.0)),
    ],
)
def test_labels_are_joined_and_scored(store, request_id, kind, value, index, expected):
    rec = store.grade(request_id, kind, value, index)
    assert (rec.family, rec.version, rec.metric, rec.score) == pytest.approx(expected)
    assert store.append_feedback(rec)
    assert [r.request_id for r in read(store.directory, "feedback", FeedbackRecord)] == [request_id]


def test_unknown_ids_and_mismatched_labels_are_refused(store):
    with pytest.raises(UnknownRequest):
        store.grade("nope", "sentiment_label", "positive")
    with pytest.raises(KindMismatch, match="grades sentiment predictions.*judge prediction"):
        store.grade("sheet", "sentiment_label", "positive")
    with pytest.raises(LabelMismatch, match="out of range"):
        store.grade("sent", "sentiment_label", "positive", index=3)
    with pytest.raises(LabelMismatch, match="battle"):
        store.grade("battle", "judge_score", 0.5)
    with pytest.raises(LabelMismatch):
        store.grade("sheet", "judge_score", 1.5)


def test_records_are_the_documented_json_lines(store):
    line = store.predictions.files()[0].read_text().splitlines()[0]
    doc = json.loads(line)
    assert set(doc) == {"request_id", "time", "family", "version", "endpoint", "inputs_sha256", "outputs"}
    assert doc["endpoint"] == "/ai/sentiment/analyze/batch"


def test_the_index_is_bounded_in_bytes_and_keeps_compact_records(tmp_path):
    import gc
    import tracemalloc
    import uuid

    batch = {"labels": ["positive"] * 64, "versions": [1] * 64}
    store = PredictionStore(tmp_path / "big", index_size=10_000, index_max_bytes=20_000)
    for i in range(200):
        store.record(f"r{i}", "sentiment", 1, "/ai/sentiment/analyze/batch", "00", batch)
    assert store.index_bytes <= 20_000 and 10 < len(store) < 30  # ~1.1 KB an entry
    assert store.lookup("r199").outputs == batch and store.lookup("r0") is None
    before = (len(store), store.index_bytes)
    store.record("r199", "sentiment", 1, "/ai/sentiment/analyze/batch", "00", batch)  # the same id again
    assert (len(store), store.index_bytes) == before

    # A chat prediction: about 230 bytes in memory (id, packed record, the dict's share), and the
    # byte bound's estimate is not below it.
    chat = PredictionStore(tmp_path / "chat", index_size=100_000)
    n = 5_000
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(n):
            chat.record(uuid.uuid4().hex, "sentiment", 1, "/ai/sentiment/analyze", "ab" * 32,
                        {"labels": ["positive"], "versions": [1]})
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    chat.close()
    measured = traced / n  # a little above the index alone: the open log file's buffers are traced too
    assert measured < 400, measured
    assert chat.index_bytes / n >= 200
    rec = chat.lookup(next(iter(chat._index)))
    assert (rec.family, rec.version, rec.outputs) == ("sentiment", 1, {"labels": ["positive"], "versions": [1]})
