"""Canary gate verdicts from window statistics."""

import numpy as np

from djserve.mlops.gates import GateConfig, evaluate


def window(values, errors=0, p95=0.05):
    n = len(values) + errors
    return {"count": n, "errors": errors, "error_rate": errors / n, "latency_p95_s": p95, "values": list(values)}


def stats(stable, canary):
    return {"family": "judge", "versions": {"1": stable, "2": canary}}


CFG = GateConfig(min_requests=100)
RNG = np.random.default_rng(0)


def test_waits_for_enough_requests():
    r = evaluate(stats(window(RNG.normal(0.5, 0.05, 500)), window(RNG.normal(0.5, 0.05, 50))), 1, 2, CFG)
    assert r.verdict == "wait" and r.canary_requests == 50


def test_same_distribution_passes():
    r = evaluate(stats(window(RNG.normal(0.5, 0.05, 500)), window(RNG.normal(0.5, 0.05, 300))), 1, 2, GateConfig(min_requests=100, ks_alpha=0.001))
    assert r.verdict == "pass" and r.ks_p_value > 0.001


def test_shifted_outputs_fail_on_ks():
    r = evaluate(stats(window(RNG.normal(0.5, 0.05, 500)), window(RNG.normal(0.6, 0.05, 300))), 1, 2, CFG)
    assert r.verdict == "fail" and any("distribution shifted" in x for x in r.reasons)


def test_errors_and_latency_fail():
    same = RNG.normal(0.5, 0.05, 300)
    r = evaluate(stats(window(same), window(same, errors=30)), 1, 2, CFG)
    assert r.verdict == "fail" and any("error rate" in x for x in r.reasons)
    r = evaluate(stats(window(same, p95=0.05), window(same, p95=0.2)), 1, 2, CFG)
    assert r.verdict == "fail" and any("p95 latency" in x for x in r.reasons)
