"""`djserve bench --smoke`: the whole benchmark once, briefly. Checks it completes and reports every
figure; never asserts a time (the figures of a smoke run mean nothing)."""

from __future__ import annotations

import json
import subprocess
import sys

from loadtest.bench.report import BenchReport
from loadtest.bench.settings import BenchSettings
from loadtest.bench.workloads import WORKLOADS


def test_smoke_run_writes_every_figure(exported_repository, tmp_path):
    out = tmp_path / "bench"
    run = subprocess.run(
        [sys.executable, "-m", "djserve.cli", "bench", "--smoke", "--repository", str(exported_repository), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = BenchReport.model_validate(json.loads((out / "bench.json").read_text()))
    cfg = BenchSettings.smoke()

    # 1. the limit of every benchmarked model, over several batch sizes
    assert set(report.limits) == {w.model for w in WORKLOADS.values()}
    assert all(len(l.points) >= 2 and l.rows_per_s > 0 for l in report.limits.values())
    # 2. Triton: every workload, batching on and off, every concurrency, with Triton's own batch figures
    expected = {(w, b, c) for w in WORKLOADS for b in ("on", "off") for c in cfg.concurrencies}
    assert {(p.workload, p.batching, p.concurrency) for p in report.triton} == expected
    assert all(p.avg_batch >= 1 and p.compute_ms > 0 for p in report.triton)
    # batching off really is off: Triton never formed a batch larger than one request
    assert all(p.avg_batch == WORKLOADS[p.workload].rows for p in report.triton if p.batching == "off")
    # 3 and 4. the gateway and the naive baseline on the same endpoints and concurrencies
    endpoints = {"gateway": cfg.gateway_endpoints, "naive": cfg.gateway_endpoints,
                 "gateway_unbatched": cfg.unbatched_endpoints, "gateway_cache": cfg.cached_endpoints}
    for target, names in endpoints.items():
        got = {(p.endpoint, p.concurrency) for p in (*report.gateway, *report.naive) if p.target == target}
        assert got == {(e, c) for e in names for c in cfg.concurrencies}, target
    assert {"micro_batching_on_over_off.sentiment", "cache_on_over_off.sentiment_zipf",
            "stack_with_cache_over_naive.sentiment_zipf"} <= set(report.ratios)
    assert report.judge_e2e.requests >= 1 and report.judge_parts.windows == 2  # 30 s: one full window + the rest
    assert [p.concurrency for p in report.live] == cfg.live_streams
    assert report.startup is not None and report.startup.models_ready == len(list(exported_repository.glob("*/config.pbtxt")))

    every_point = [*report.triton, *report.gateway, *report.naive, report.judge_e2e, *report.live]
    assert all(p.errors == 0 and p.requests > 0 for p in every_point), [p.first_error for p in every_point if p.errors]
    assert all(v is not None for v in report.ratios.values()), report.ratios
    assert len(report.checks) == 10 and all(c.value is not None for c in report.checks)
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Targets" in run.stdout
