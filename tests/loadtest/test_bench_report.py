"""The benchmark's ratios and target verdicts, on hand-made figures with known answers."""

from __future__ import annotations

import pytest

from loadtest.bench.http_load import EndpointPoint
from loadtest.bench.judge_inprocess import JudgeParts
from loadtest.bench.limit import ModelLimit
from loadtest.bench.report import BenchReport
from loadtest.bench.startup import Startup
from loadtest.bench.triton_direct import TritonPoint


def point(cls, concurrency, rps, p95, p50=None, rows=1, **extra):
    return cls(concurrency=concurrency, requests=int(rps * 10), errors=0, seconds=10.0, throughput=rps,
               items_per_s=rps * rows, p50_ms=p50 if p50 is not None else p95 / 2, p95_ms=p95, p99_ms=p95, mean_ms=p95 / 2, **extra)


def triton(workload, batching, c, rps, p50=1.0, rows=1):
    return point(TritonPoint, c, rps, p50 * 2, p50=p50, rows=rows, workload=workload, batching=batching,
                 avg_batch=1.0, queue_ms=0.0, compute_ms=1.0)


def http(target, endpoint, c, rps, p95, p50=None):
    return point(EndpointPoint, c, rps, p95, p50=p50, target=target, endpoint=endpoint)


def limit(model, rows_per_s):
    return ModelLimit(model=model, threads=2, best_batch=8, rows_per_s=rows_per_s, batch1_ms=1.0, points=[])


@pytest.fixture
def report() -> BenchReport:
    r = BenchReport(
        machine={}, settings={},
        limits={"sentiment": limit("sentiment", 1000.0), "judge": limit("judge", 50.0), "recommender": limit("recommender", 1e5)},
        triton=[
            triton("sentiment", "off", 1, 300, p50=2.0), triton("sentiment", "off", 16, 400),
            triton("sentiment", "on", 1, 300, p50=2.0), triton("sentiment", "on", 16, 700),
            triton("sentiment_x8", "on", 16, 110, rows=8),  # 880 rows/s
            triton("judge", "on", 1, 30), triton("judge", "on", 16, 45),
            triton("recommender_pair", "off", 16, 1000), triton("recommender_pair", "on", 16, 1400),
        ],
        naive=[http("naive", "sentiment", 1, 100, 12.0), http("naive", "sentiment", 4, 104, 40.0),
               http("naive", "sentiment", 16, 105, 150.0)],
        gateway=[
            http("gateway", "sentiment", 1, 150, 8.0, p50=5.5),
            http("gateway", "sentiment", 4, 400, 20.0),
            http("gateway", "sentiment", 16, 600, 160.0),  # 5.7x, but its p95 is worse than naive's there
        ],
        judge_parts=JudgeParts(clip_seconds=30, windows=2, decode_ms=10, features_ms=190, models_ms=600, sum_ms=800),
        judge_e2e=http("gateway", "judge", 1, 1.1, 1000.0, p50=900.0),
        live=[http("gateway", "live_beats x4", 4, 4, 50.0), http("gateway", "live_beats x8", 8, 8, 120.0)],
        startup=Startup(seconds_to_ready=12.5, models_ready=11),
    )
    r.compute(live_target_streams=8)
    return r


def test_ratios(report):
    assert report.ratios["triton_over_limit.sentiment"] == 0.7  # best batching-on point / limit
    assert report.ratios["triton_over_limit.sentiment_x8"] == 0.88  # rows, not requests
    assert report.ratios["batching_on_over_off.sentiment"] == 1.75  # at the top concurrency
    # Same concurrency, stack p95 no worse: c=1 1.5x, c=4 400/104; c=16 (600/105) does not count,
    # its p95 of 160 ms is worse than naive's 150 ms.
    assert report.ratios["stack_over_naive.sentiment"] == pytest.approx(400 / 104, abs=1e-3)
    assert report.ratios["gateway_overhead_ms.sentiment"] == 3.5  # 5.5 ms gateway p50 - 2.0 ms Triton p50 (c=1)
    assert report.ratios["judge_e2e_over_parts"] == 1.125
    assert report.ratios["live_rtf_p95.8_streams"] == 0.12


def test_verdicts(report):
    verdicts = {c.target: c.ok for c in report.checks}
    assert verdicts["Triton / in-process limit >= 0.8: judge"] is True  # 45 / 50
    assert verdicts["Triton / in-process limit >= 0.8: sentiment (8-message requests)"] is True
    assert verdicts["batching on / off >= 1.5 at top concurrency: sentiment"] is True
    assert verdicts["batching on / off >= 1.5 at top concurrency: recommender pairs"] is False  # 1.4
    assert verdicts["stack / naive >= 3 at equal p95: sentiment"] is True
    assert verdicts["stack / naive >= 3 at equal p95: recommendations"] is False  # not measured: no value
    assert len(verdicts) == 10
    assert verdicts["judge end-to-end p50 / in-process parts <= 1.25"] is True
    assert verdicts["live real-time factor (p95) <= 0.1 at 8 streams"] is False  # 120 ms p95
    assert verdicts["djserve serve ready <= 20 s"] is True
