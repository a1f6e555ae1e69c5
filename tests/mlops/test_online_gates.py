"""Online canary gates: each check, the verdict rule, fail-closed inputs and the JSON record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from djserve.mlops.online_gates import (
    ArmSample,
    ExpectedShift,
    GateResult,
    OnlineGateConfig,
    error_llr,
    evaluate,
    expected_map,
    ks_distance,
    spent_alpha,
    sprt_bounds,
)

CFG = OnlineGateConfig()


def arm(rng, n, errors=0, latency=1.0, shift=0.0, labels=(), median_s=0.05):
    """n requests (errors of them failed), lognormal latencies x `latency`, outputs Beta(2, 5) + shift."""
    return ArmSample(
        requests=n,
        errors=errors,
        latencies_s=(latency * rng.lognormal(math.log(median_s), 0.5, n)).tolist(),
        values=np.clip(rng.beta(2, 5, n - errors) + shift, 0, 1).tolist(),
        labels=list(labels),
    )


def check(result: GateResult, name: str):
    return next(c for c in result.checks if c.name == name)


def expectation(rng, shift, n=2000, source="shadow"):
    stable = rng.beta(2, 5, n)
    return ExpectedShift(source=source, candidate=np.clip(stable + shift, 0, 1).tolist(), stable=stable.tolist())


# --- verdicts from whole samples -----------------------------------------------------------------


def test_healthy_canary_passes_without_expectation_or_labels():
    rng = np.random.default_rng(1)
    r = evaluate(arm(rng, 3000, errors=30), arm(rng, 600, errors=6), CFG)
    assert r.verdict == "pass" and r.reasons == []
    assert [(c.name, c.verdict) for c in r.checks] == [
        ("error_rate", "pass"), ("latency_p95", "pass"), ("output_shift", "not_gated"), ("labels", "not_gated")
    ]
    assert (r.canary_requests, r.stable_requests) == (600, 3000)
    assert "not enough labels" in check(r, "labels").detail


def test_error_regression_fails_and_says_why():
    rng = np.random.default_rng(2)
    r = evaluate(arm(rng, 3000, errors=30), arm(rng, 600, errors=30), CFG)  # 1% vs 5%
    c = check(r, "error_rate")
    assert r.verdict == "fail" and c.verdict == "fail" and r.reasons == [c.detail]
    assert c.figures["llr"] >= c.figures["fail_above"] and "5.00%" in c.detail


def test_gross_error_regression_fails_before_min_requests():
    rng = np.random.default_rng(3)
    r = evaluate(arm(rng, 500, errors=5), arm(rng, 60, errors=15), CFG)
    assert r.verdict == "fail" and check(r, "error_rate").verdict == "fail"


def test_healthy_canary_waits_for_min_requests_per_arm():
    rng = np.random.default_rng(4)
    cfg = CFG.model_copy(update={"min_requests": 500})
    for stable_n, canary_n in [(3000, 400), (400, 3000)]:
        r = evaluate(arm(rng, stable_n), arm(rng, canary_n), cfg)
        c = check(r, "error_rate")
        assert r.verdict == "wait" and c.verdict == "wait", (stable_n, canary_n)
        assert c.figures["llr"] <= c.figures["pass_below"] and "pass after 500 requests" in c.detail
        assert evaluate(arm(rng, stable_n), arm(rng, canary_n), CFG).verdict == "pass"


def test_equal_error_rates_on_few_requests_wait():
    rng = np.random.default_rng(5)
    r = evaluate(arm(rng, 2000, errors=100), arm(rng, 250, errors=12), CFG)  # 5% each: not yet evidence either way
    assert r.verdict == "wait" and check(r, "error_rate").verdict == "wait"


def test_error_llr_counts_the_stables_noise():
    bounds = sprt_bounds(CFG.alpha, CFG.beta)
    assert bounds == pytest.approx((math.log(0.02 / 0.998), math.log(0.98 / 0.002)))
    # More canary errors, more evidence of a regression.
    llrs = error_llr(np.arange(0, 40, 5), 1000, 10, 1000, 0.02)
    assert np.all(np.diff(llrs) > 0)
    # The same canary (3% vs stable's 1%) is weaker evidence against a 1,000-request stable than a 100,000-request one.
    assert error_llr(30, 1000, 10, 1000, 0.02) < error_llr(30, 1000, 1000, 100_000, 0.02)
    # No errors anywhere: H1 costs log(1 - 0.02) per canary request.
    assert float(error_llr(0, 300, 0, 5000, 0.02)) == pytest.approx(300 * math.log(0.98))


# --- latency ----------------------------------------------------------------------------------------


def test_latency_regression_fails():
    rng = np.random.default_rng(6)
    r = evaluate(arm(rng, 3000), arm(rng, 300, latency=2.0), CFG)
    c = check(r, "latency_p95")
    assert r.verdict == "fail" and c.verdict == "fail" and any("latency" in x for x in r.reasons)
    assert c.figures["canary_p95_s"] > 1.7 * c.figures["stable_p95_s"]


def test_latency_within_tolerance_passes():
    rng = np.random.default_rng(7)
    r = evaluate(arm(rng, 3000), arm(rng, 600, latency=1.1), CFG)
    assert r.verdict == "pass" and check(r, "latency_p95").verdict == "pass"


def test_slack_tolerates_jitter_on_tiny_latencies():
    rng = np.random.default_rng(8)
    stable, canary = arm(rng, 3000, median_s=0.001), arm(rng, 600, latency=2.0, median_s=0.001)  # 1 ms -> 2 ms
    assert evaluate(stable, canary, CFG).verdict == "pass"
    assert evaluate(stable, canary, CFG.model_copy(update={"latency_slack_s": 0.0})).verdict == "fail"


def test_latency_waits_without_enough_latencies():
    rng = np.random.default_rng(9)
    stable, canary = arm(rng, 3000), arm(rng, 600)
    cases = {
        "stable": (stable.model_copy(update={"latencies_s": stable.latencies_s[:50]}), canary),
        "canary": (stable, canary.model_copy(update={"latencies_s": canary.latencies_s[:50]})),
        "none": (stable.model_copy(update={"latencies_s": []}), canary.model_copy(update={"latencies_s": []})),
    }
    for name, (s, c) in cases.items():
        r = evaluate(s, c, CFG)
        assert r.verdict == "wait" and check(r, "latency_p95").verdict == "wait", name
        assert check(r, "error_rate").verdict == "pass"  # only the latencies are missing


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.01])
def test_latency_rejects_bad_values(bad):
    rng = np.random.default_rng(10)
    stable, canary = arm(rng, 3000), arm(rng, 600)
    r = evaluate(stable, canary.model_copy(update={"latencies_s": canary.latencies_s + [bad]}), CFG)
    assert r.verdict == "wait" and "NaN/inf or negatives" in check(r, "latency_p95").detail


# --- output shift ---------------------------------------------------------------------------------


def test_expected_shift_passes_where_a_plain_ks_test_would_fail():
    rng = np.random.default_rng(11)
    stable, canary = arm(rng, 3000), arm(rng, 600, shift=0.08)
    assert ks_2samp(canary.values, stable.values).pvalue < 1e-6  # the old gate's veto
    r = evaluate(stable, canary, CFG, expectation(rng, 0.08))
    c = check(r, "output_shift")
    assert r.verdict == "pass" and c.verdict == "pass"
    assert c.figures["ks_to_expected"] < 0.1 < c.figures["ks_live"]


def test_shift_in_the_wrong_direction_fails():
    rng = np.random.default_rng(12)
    stable, canary = arm(rng, 3000), arm(rng, 600, shift=-0.08)
    r = evaluate(stable, canary, CFG, expectation(rng, 0.08))
    c = check(r, "output_shift")
    assert r.verdict == "fail" and c.verdict == "fail" and r.reasons == [c.detail]
    assert c.figures["ks_to_expected"] > c.figures["allowed"]
    # Both KS distances to the stable are about the same: a difference of them would have passed.
    assert abs(c.figures["ks_live"] - c.figures["ks_expected"]) < 0.05


def test_output_shift_without_expectation_is_not_gated():
    rng = np.random.default_rng(13)
    r = evaluate(arm(rng, 3000), arm(rng, 600, shift=-0.3), CFG)
    assert r.verdict == "pass" and check(r, "output_shift").verdict == "not_gated"


def test_output_shift_waits_without_enough_or_valid_values():
    rng = np.random.default_rng(14)
    stable, canary = arm(rng, 3000), arm(rng, 600, shift=0.08)
    exp = expectation(rng, 0.08)
    cases = {
        "few canary values": (stable, canary.model_copy(update={"values": canary.values[:50]}), exp),
        "no stable values": (stable.model_copy(update={"values": []}), canary, exp),
        "NaN value": (stable, canary.model_copy(update={"values": canary.values + [float("nan")]}), exp),
        "empty expectation": (stable, canary, ExpectedShift(source="offline", candidate=[], stable=[])),
        "NaN in expectation": (stable, canary, exp.model_copy(update={"stable": exp.stable + [float("nan")]})),
    }
    for name, (s, c, e) in cases.items():
        r = evaluate(s, c, CFG, e)
        assert r.verdict == "wait" and check(r, "output_shift").verdict == "wait", name
        assert r.reasons == [check(r, "output_shift").detail]


def test_reference_narrower_than_live_outputs():
    """An offline expectation on 100 outputs in [0.4, 0.6], both versions alike; live outputs span [0, 1]."""
    rng = np.random.default_rng(25)
    same = [0.4 + 0.002 * i for i in range(100)]
    exp = ExpectedShift(source="offline", candidate=same, stable=same)
    stable = arm(rng, 3000)
    r = evaluate(stable, arm(rng, 600), CFG, exp)
    assert r.verdict == "pass" and check(r, "output_shift").figures["ks_to_expected"] < 0.1
    r = evaluate(stable, arm(rng, 600, shift=0.4), CFG, exp)  # a broken export: outputs moved anyway
    assert r.verdict == "fail" and check(r, "output_shift").verdict == "fail"


def test_expected_map_and_ks_distance():
    rng = np.random.default_rng(15)
    ref = rng.normal(0, 1, 5000)
    mapped = expected_map(np.array([-1.0, 0.0, 1.0]), ref + 2.0, ref)  # candidate = stable + 2 on the reference
    assert mapped == pytest.approx([1.0, 2.0, 3.0], abs=0.05)
    scaled = expected_map(np.array([-1.0, 1.0]), 3 * ref, rng.permutation(ref))  # unpaired lists work too
    assert scaled == pytest.approx([-3.0, 3.0], abs=0.15)
    edges = expected_map(np.array([-100.0, 100.0]), ref + 2.0, ref)  # beyond the reference: the edge's shift
    assert edges == pytest.approx([-98.0, 102.0])
    a, b = rng.integers(0, 20, 300).astype(float), rng.integers(2, 25, 500).astype(float)  # with ties
    assert ks_distance(a, b) == pytest.approx(ks_2samp(a, b).statistic)


def test_spent_alpha_sums_to_alpha():
    n = np.arange(200, 10_000_000, dtype=float)
    assert spent_alpha(0.001, n, 200).sum() == pytest.approx(0.001, rel=1e-4)


# --- labels ---------------------------------------------------------------------------------------


def test_confidently_worse_labels_veto():
    rng = np.random.default_rng(16)
    stable = arm(rng, 3000, labels=(rng.random(1000) < 0.9).astype(float))
    canary = arm(rng, 600, labels=(rng.random(300) < 0.6).astype(float))  # a veto needs a clear drop: 90% -> 60%
    r = evaluate(stable, canary, CFG)
    c = check(r, "labels")
    assert r.verdict == "fail" and c.verdict == "fail" and c.figures["z"] > c.figures["fail_above"]


def test_labels_within_margin_do_not_veto():
    rng = np.random.default_rng(17)
    stable = arm(rng, 3000, labels=-np.abs(rng.normal(0, 0.10, 1000)))  # minus absolute error
    canary = arm(rng, 600, labels=-np.abs(rng.normal(0, 0.12, 300)))  # 0.016 worse on average, margin 0.05
    r = evaluate(stable, canary, CFG)
    assert r.verdict == "pass" and check(r, "labels").verdict == "pass"


def test_labels_never_pass_alone_and_few_labels_do_not_block():
    rng = np.random.default_rng(18)
    good = (rng.random(1000) < 0.9).astype(float)
    r = evaluate(arm(rng, 3000, labels=good), arm(rng, 100, labels=good[:500]), CFG)  # too few requests yet
    assert check(r, "labels").verdict == "pass" and r.verdict == "wait"
    r = evaluate(arm(rng, 3000, labels=good), arm(rng, 600, labels=good[:40]), CFG)
    assert check(r, "labels").verdict == "not_gated" and r.verdict == "pass"


def test_nan_labels_wait():
    rng = np.random.default_rng(19)
    r = evaluate(arm(rng, 3000), arm(rng, 600, labels=[1.0] * 200 + [float("nan")]), CFG)
    assert r.verdict == "wait" and check(r, "labels").verdict == "wait"


# --- fail-closed inputs and the record -------------------------------------------------------------


def test_no_requests_wait():
    rng = np.random.default_rng(20)
    empty = ArmSample(requests=0, errors=0, latencies_s=[], values=[])
    for s, c in [(arm(rng, 3000), empty), (empty, arm(rng, 600)), (empty, empty)]:
        r = evaluate(s, c, CFG)
        assert r.verdict == "wait" and r.reasons and check(r, "error_rate").verdict == "wait"


@pytest.mark.parametrize(
    "update",
    [{"requests": float("nan")}, {"errors": float("nan")}, {"requests": -5, "errors": 0}, {"errors": -1},
     {"errors": 10_000}, {"requests": 600.5}, {"requests": None}],
)
def test_invalid_counts_wait(update):
    rng = np.random.default_rng(21)
    stable, canary = arm(rng, 3000), arm(rng, 600)
    for s, c in [(stable, canary.model_copy(update=update)), (stable.model_copy(update=update), canary)]:
        r = evaluate(s, c, CFG)  # model_copy skips validation, as a careless caller might
        assert r.verdict == "wait" and "invalid" in check(r, "error_rate").detail


@pytest.mark.parametrize("canary", [None, {"requests": float("nan"), "errors": 0, "latencies_s": [], "values": []},
                                    {"requests": 10}, "garbage"])
def test_malformed_arms_wait(canary):
    rng = np.random.default_rng(22)
    r = evaluate(arm(rng, 3000), canary, CFG)
    assert r.verdict == "wait" and r.checks[0].name == "input" and "invalid canary sample" in r.reasons[0]


def test_arms_and_expectation_as_mappings():
    rng = np.random.default_rng(23)
    exp = expectation(rng, 0.0).model_dump()
    r = evaluate(arm(rng, 3000).model_dump(), arm(rng, 600).model_dump(), CFG, exp)
    assert r.verdict == "pass" and check(r, "output_shift").verdict == "pass"
    r = evaluate(arm(rng, 3000), arm(rng, 600), CFG, {**exp, "stable": "garbage"})
    assert r.verdict == "wait" and "invalid expected shift" in r.reasons[0]


def test_to_dict_is_strict_json():
    rng = np.random.default_rng(24)
    r = evaluate(arm(rng, 3000, errors=30), arm(rng, 600, errors=30), CFG, expectation(rng, 0.0))
    r.checks[0].figures["llr"] = float("nan")  # a non-finite figure must not break the log
    d = r.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["verdict"] == "fail" and d["checks"][0]["figures"]["llr"] is None
    assert {c["name"] for c in d["checks"]} == {"error_rate", "latency_p95", "output_shift", "labels"}


def test_config_rejects_inverted_latency_hypotheses():
    with pytest.raises(ValueError):
        OnlineGateConfig(latency_h0_exceed=0.3, latency_h1_exceed=0.2)
