"""SLO verdicts on hand-written Locust `--json-file` outputs (tests/testdata/locust/)."""

from __future__ import annotations

import pytest

from djserve.settings import PROJECT_ROOT
from loadtest.slo import SloPolicy, check, check_file, endpoint_stats, load_stats, percentile

DATA = PROJECT_ROOT / "tests" / "testdata" / "locust"
SENTIMENT, BATCH, RECO, JUDGE = (
    "/ai/sentiment/analyze",
    "/ai/sentiment/analyze/batch",
    "/ai/recommendations/battles",
    "/ai/judge/analyze",
)


def by_name(report, kind: str) -> dict:
    """{endpoint name: check} for the checks named `<endpoint> <kind>`."""
    return {c.name.removesuffix(f" {kind}"): c for c in report.checks if c.name.endswith(f" {kind}")}


def test_percentiles_and_mean_come_from_the_histogram():
    stats = {s.name: s for s in load_stats(DATA / "pass.json")}
    s = stats[SENTIMENT]  # 8 ms x40, 12 x40, 25 x15, 60 x4, 90 x1
    assert (s.requests, s.failures, s.failure_rate) == (100, 0, 0.0)
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == (12, 60, 90)
    assert s.mean_ms == pytest.approx(15.1)
    assert s.max_ms == pytest.approx(91.2)
    b = stats[BATCH]  # 30 ms x8, 45 x2
    assert (b.p50_ms, b.p95_ms, b.p99_ms, b.mean_ms) == (30, 45, 45, 33.0)
    r = stats[RECO]  # 15 ms x18, 40 x2
    assert (r.p50_ms, r.p95_ms, r.p99_ms, r.mean_ms) == (15, 40, 40, 17.5)


def test_percentile_rule():
    histogram = {10.0: 50, 20.0: 30, 40.0: 15, 90.0: 4, 150.0: 1}
    assert [percentile(histogram, 100, p) for p in (0.5, 0.8, 0.95, 0.99, 1.0)] == [20, 40, 90, 150, 150]
    assert percentile({7.0: 1}, 1, 0.95) == 7
    assert percentile({}, 0, 0.95) == 0


def test_a_fast_clean_run_passes_every_check():
    report = check_file(DATA / "pass.json")
    assert report.passed and report.failed == []
    p95 = by_name(report, "p95")
    assert set(p95) == {SENTIMENT, BATCH, RECO}
    assert (p95[SENTIMENT].measured, p95[SENTIMENT].limit, p95[SENTIMENT].passed) == (60, 100, True)
    assert set(by_name(report, "failure rate")) == {SENTIMENT, BATCH, RECO}
    requests = next(c for c in report.checks if c.name == "requests")
    assert (requests.measured, requests.passed) == (130, True)


def test_one_failure_fails_that_endpoint_only():
    report = check_file(DATA / "one_failure.json")
    assert not report.passed
    assert [c.name for c in report.failed] == [f"{RECO} failure rate"]
    failed = report.failed[0]
    assert (failed.measured, failed.limit) == (pytest.approx(0.05), 0)
    assert failed.message == f"{RECO} failure rate 0.05 > 0 (1 of 20 requests failed)"


def test_the_failure_rate_limit_is_a_parameter():
    assert check_file(DATA / "one_failure.json", SloPolicy(max_failure_rate=0.05)).passed
    assert not check_file(DATA / "one_failure.json", SloPolicy(max_failure_rate=0.04)).passed


def test_slow_sentiment_fails_its_p95():
    report = check_file(DATA / "slow_sentiment.json")  # 20 ms x90, 140 x8, 300 x2
    assert [c.name for c in report.failed] == [f"{SENTIMENT} p95"]
    failed = report.failed[0]
    assert (failed.measured, failed.limit, failed.unit) == (140, 100, "ms")
    assert failed.message == f"{SENTIMENT} p95 140 ms > 100 ms"
    sentiment = next(e for e in report.endpoints if e.name == SENTIMENT)
    assert (sentiment.p50_ms, sentiment.p99_ms, sentiment.mean_ms) == (20, 300, pytest.approx(35.2))
    assert by_name(report, "p95")[RECO].passed


def test_the_p95_limit_is_strict_and_a_parameter():
    assert check_file(DATA / "slow_sentiment.json", SloPolicy(p95_ms=141)).passed
    report = check_file(DATA / "slow_sentiment.json", SloPolicy(p95_ms=140))
    assert [c.message for c in report.failed] == [f"{SENTIMENT} p95 140 ms = 140 ms"]


def test_a_slow_judge_upload_is_not_real_time_and_passes():
    report = check_file(DATA / "judge_slow.json")
    judge = next(e for e in report.endpoints if e.name == JUDGE)
    assert (judge.p50_ms, judge.p95_ms, judge.mean_ms) == (4200, 12000, 6150)
    assert report.passed
    assert JUDGE not in by_name(report, "p95")
    assert by_name(report, "failure rate")[JUDGE].passed


def test_which_endpoints_are_real_time_is_a_parameter():
    report = check_file(DATA / "judge_slow.json", SloPolicy(realtime=(JUDGE,)))
    assert [c.message for c in report.failed] == [f"{JUDGE} p95 12000 ms > 100 ms"]


def test_zero_requests_fail():
    report = check_file(DATA / "zero_requests.json")
    assert report.endpoints == []
    assert not report.passed
    assert [c.message for c in report.failed] == ["requests 0 < 1"]


def test_direct_calls_of_the_live_models_are_real_time_and_judge_windows_are_not():
    def entry(name):
        return {"name": name, "method": "grpc", "num_requests": 3, "num_failures": 0,
                "total_response_time": 450.0, "response_times": {"150": 3}}  # fmt: skip

    report = check([endpoint_stats(entry(n)) for n in ("judge", "sentiment", "beat_tracker")])
    assert [c.message for c in report.failed] == ["sentiment p95 150 ms > 100 ms", "beat_tracker p95 150 ms > 100 ms"]
