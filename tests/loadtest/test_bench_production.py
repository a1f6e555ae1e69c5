"""`djserve bench --profile production --smoke`: the production-size profile's script once, at the
reference size so it takes a minute. Checks it runs every section and that its figures are
consistent with each other; never asserts a time."""

from __future__ import annotations

import json
import subprocess
import sys

from loadtest.bench.production import ProductionReport, ProductionSettings


def test_production_profile_smoke_run(exported_repository, tmp_path):
    out = tmp_path / "production"
    run = subprocess.run(
        [sys.executable, "-m", "djserve.cli", "bench", "--profile", "production", "--smoke",
         "--repository", str(exported_repository), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = ProductionReport.model_validate(json.loads((out / "production.json").read_text()))
    cfg = ProductionSettings.smoke()

    assert report.parameters_m > 0 and [p.batch for p in report.limit.points] == [1, 2, 4, 8, 16, 32]
    # INT8 is a real quantized graph: smaller on disk, and close to FP32 on chat lines
    assert report.int8.int8_mb < report.int8.fp32_mb and report.int8.agreement >= 0.9
    # the sweep covers the grid, and the chosen placement is the sweep's fastest
    assert len(report.sweep) == len(cfg.instances) * len(cfg.threads) * len(cfg.delays_us)
    assert report.chosen == max(report.sweep, key=lambda s: s.point.items_per_s).placement
    # Triton at the chosen placement, batching on and off; off never formed a batch
    assert {(p.workload, p.batching) for p in report.triton} == {(w, b) for w in ("sentiment", "sentiment_x8") for b in ("on", "off")}
    assert all(p.avg_batch == (8 if p.workload == "sentiment_x8" else 1) for p in report.triton if p.batching == "off")
    # the gateway (FP32, then the INT8 version) and the naive baseline: the same endpoints and concurrencies
    expected = {(e, c) for e in ("sentiment", "sentiment_batch") for c in cfg.concurrencies}
    for target in ("gateway", "gateway_int8", "naive"):
        assert {(p.endpoint, p.concurrency) for p in (*report.gateway, *report.naive) if p.target == target} == expected, target
    every = [*report.triton, *report.gateway, *report.naive, *(s.point for s in report.sweep)]
    assert all(p.errors == 0 and p.requests > 0 for p in every), [p.first_error for p in every if p.errors]
    assert all(v is not None for v in report.ratios.values()), report.ratios
    assert report.ratios["int8_over_fp32.batch8"] == report.int8.speedup
    assert {"stack_over_naive.sentiment", "stack_int8_over_naive.sentiment_batch", "gateway_over_limit.sentiment"} <= set(report.ratios)
    assert "Ratios" in run.stdout


def test_sweep_profile_smoke_run(exported_repository, tmp_path):
    """`djserve bench --profile sweep --smoke`: each placement really loaded (a single-thread and a
    two-thread judge), the fastest chosen, and the spec's own placement recognised among them."""
    from loadtest.bench.sweep import spec_placement

    out = tmp_path / "sweep"
    run = subprocess.run(
        [sys.executable, "-m", "djserve.cli", "bench", "--profile", "sweep", "--smoke", "--repository", str(exported_repository), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (judge,) = json.loads((out / "sweep.json").read_text())["sweeps"]
    assert judge["workload"] == "judge" and [p["placement"]["threads"] for p in judge["points"]] == [1, 2]
    assert all(p["point"]["errors"] == 0 and p["point"]["requests"] > 0 for p in judge["points"])
    assert judge["chosen"] == max(judge["points"], key=lambda p: p["point"]["items_per_s"])["placement"]
    assert judge["spec"] == spec_placement("judge").model_dump() and judge["chosen_over_spec"] >= 1.0
    assert "placement sweep: judge" in run.stdout
