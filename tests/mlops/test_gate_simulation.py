"""Simulated canaries through the online gates: power, false rollbacks, fail-closed (seeded, a few seconds).

1,000 canaries per scenario, polled the way the promotion loop sees them: cumulative counts since the
step began, growing by a few requests per poll (canary ~ Poisson(5) per poll, the stable the rest of
the traffic at a 10% or 50% canary share), a verdict at every poll until the first non-wait one (or
the step timeout, `max_canary_requests`, which the loop answers with a rollback).
The polls run vectorised over all canaries with the module's own statistics; latencies and output
values are drawn on fixed grids so that each arm is a histogram and a p95 or KS distance costs one
cumsum. `test_vectorised_matches_evaluate` replays traced canaries through `evaluate` itself, poll
by poll, and checks it takes the same decision at the same poll. `pytest -s` prints the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from djserve.mlops.online_gates import (
    DETECTS_WITHIN_REQUESTS,
    DETECTS_WITHIN_REQUESTS_BY_RATE_SHARE,
    LATENCY_DETECTS_WITHIN_REQUESTS,
    ArmSample,
    ExpectedShift,
    OnlineGateConfig,
    error_llr,
    evaluate,
    exceed_llr,
    expected_map,
    label_critical_z,
    label_z,
    shift_allowance,
    sprt_bounds,
)

N = 1000  # canaries per scenario
CFG = OnlineGateConfig()
CANARY_PER_POLL = 5.0  # mean canary requests per poll
LAT_GRID = np.geomspace(0.005, 1.0, 160)  # seconds, 3.4% apart; simulated latencies are these values
# Output summaries lie in [0, 1], on 1/128 steps: sums and differences of them are exact in floating
# point, so the expected map (output + candidate - stable) lands exactly on this grid, which spans it.
VAL_GRID = (np.arange(-64, 192) + 0.5) / 128
SHIFT = 0.05  # the retrained candidate's output shift on the same request
WAIT, PASS, FAIL = 0, 1, 2


@dataclass
class Scenario:
    share: float  # canary share of the traffic
    p_stable: float  # error rates
    p_canary: float
    latency_factor: float = 1.0  # canary latency = factor x a draw from the stable's distribution
    canary_shift: float = SHIFT  # canary outputs: stable's model + this (live; the expectation says SHIFT)
    expected: bool = False  # give an ExpectedShift from 1,000 shadow pairs per canary
    labels: bool = False  # feedback on 30% of successful requests, 1/0 correct at 90% on both arms
    max_canary_requests: int = 15_000  # stands in for the step timeout: undecided there = rolled back
    trace: list[int] = field(default_factory=list)  # canaries whose raw stream is kept for replay


def latency_bins(rng, size, factor=1.0):
    """Grid indices of lognormal latencies (median 50 ms x factor, sigma 0.5), snapped up to the grid."""
    log_x = np.log(0.05 * factor) + 0.5 * rng.standard_normal(size)
    j = np.ceil((log_x - np.log(LAT_GRID[0])) / np.log(LAT_GRID[1] / LAT_GRID[0]))
    return np.clip(j, 0, len(LAT_GRID) - 1).astype(np.int64)


def stable_outputs(rng, size):
    return rng.beta(2, 5, size)


def candidate_outputs(rng, stable, shift):
    """The retrained model on the same requests: shifted, with a little per-request disagreement."""
    return np.clip(stable + shift + rng.normal(0, 0.02, len(stable)), 0, 1)


def snap(v):
    """VAL_GRID indices of outputs in [0, 1]."""
    return np.minimum((v * 128).astype(np.int64), 127) + 64


def hist_quantile(cum, n, q=0.95):
    """np.quantile(values, q) (linear) from per-row cumulative histograms over LAT_GRID."""
    h = q * (n - 1)
    j = np.floor(h).astype(np.int64)
    t = h - j
    a = LAT_GRID[(cum > j[:, None]).argmax(axis=1)]
    b = LAT_GRID[(cum > np.minimum(j + 1, n - 1)[:, None]).argmax(axis=1)]
    d = b - a
    return np.where(t < 0.5, a + d * t, b - d * (1 - t))  # numpy's lerp, to the last bit


def bump(hist, rows, bins):
    k, g = hist.shape
    hist += np.bincount(rows * g + bins, minlength=k * g).reshape(k, g)


def simulate(sc: Scenario, seed: int, n: int = N):
    """Verdict codes, canary requests at the verdict, the checks that failed, and the traces.

    State arrays hold the undecided canaries only (row r is canary ids[r]); decided ones are dropped."""
    rng = np.random.default_rng(seed)
    lo, hi = sprt_bounds(CFG.alpha, CFG.beta)
    st = {k: np.zeros(n, np.int64) for k in ("nc", "ns", "ec", "es", "lnc", "lns")}
    st |= {"lsc": np.zeros(n), "lss": np.zeros(n), "ids": np.arange(n)}
    st |= {k: np.zeros((n, len(LAT_GRID)), np.int64) for k in ("lat_c", "lat_s")}
    traces = {i: {"polls": []} for i in sc.trace}
    if sc.expected:  # per canary: 1,000 shadow pairs -> where each grid value maps to (grid indices)
        st |= {k: np.zeros((n, len(VAL_GRID)), np.int64) for k in ("val_c", "val_t")}
        st["t_idx"] = np.empty((n, len(VAL_GRID)), np.int64)
        for i in range(n):
            ref = stable_outputs(rng, 1000)
            es, ec = VAL_GRID[snap(ref)], VAL_GRID[snap(candidate_outputs(rng, ref, SHIFT))]
            mapped = expected_map(VAL_GRID[64:192], ec, es)  # the stable's outputs are in [0, 1]
            st["t_idx"][i, 64:192] = np.rint(mapped * 128 - 0.5).astype(np.int64) + 64
            assert np.array_equal(VAL_GRID[st["t_idx"][i, 64:192]], mapped)
            if i in traces:
                traces[i]["expected"] = ExpectedShift(source="shadow", candidate=ec.tolist(), stable=es.tolist())
    verdict, at, why = np.zeros(n, int), np.zeros(n, np.int64), np.full(n, "", object)
    while (k := len(st["ids"])) > 0:
        new = {"c": rng.poisson(CANARY_PER_POLL, k), "s": rng.poisson(CANARY_PER_POLL * (1 - sc.share) / sc.share, k)}
        polled = {}
        for arm, p in (("c", sc.p_canary), ("s", sc.p_stable)):
            err = rng.binomial(new[arm], p)
            st["n" + arm] += new[arm]
            st["e" + arm] += err
            rows = np.repeat(np.arange(k), new[arm])
            lb = latency_bins(rng, rows.size, sc.latency_factor if arm == "c" else 1.0)
            bump(st["lat_" + arm], rows, lb)
            ok_rows = np.repeat(np.arange(k), new[arm] - err)
            vb = None
            if sc.expected:
                out = stable_outputs(rng, ok_rows.size)
                vb = snap(candidate_outputs(rng, out, sc.canary_shift) if arm == "c" else out)
                bump(st["val_c"], ok_rows, vb) if arm == "c" else bump(st["val_t"], ok_rows, st["t_idx"][ok_rows, vb])
            lab = (rng.random(ok_rows.size) < 0.3) if sc.labels else np.zeros(ok_rows.size, bool)
            score = (rng.random(ok_rows.size) < 0.9).astype(float)
            st["ln" + arm] += np.bincount(ok_rows[lab], minlength=k)
            st["ls" + arm] += np.bincount(ok_rows[lab], score[lab], minlength=k)
            polled[arm] = (rows, err, lb, ok_rows, vb, lab, score)
        for r in np.flatnonzero(np.isin(st["ids"], sc.trace)):
            poll = {}
            for arm, (rows, err, lb, ok_rows, vb, lab, score) in polled.items():
                mine, ok = rows == r, ok_rows == r
                poll[arm] = {"requests": int(new[arm][r]), "errors": int(err[r]),
                             "latencies": LAT_GRID[lb[mine]].tolist(),
                             "values": VAL_GRID[vb[ok]].tolist() if sc.expected else [],
                             "labels": score[ok & lab].tolist()}
            traces[int(st["ids"][r])]["polls"].append(poll)

        nc, ns, ec, es = st["nc"], st["ns"], st["ec"], st["es"]
        llr_e = error_llr(ec, nc, es, ns, CFG.error_rate_regression)
        both = (nc > 0) & (ns > 0)
        e_fail = both & (llr_e >= hi)
        e_pass = both & (llr_e <= lo) & (np.minimum(nc, ns) >= CFG.min_requests)

        cum_s, cum_c = st["lat_s"].cumsum(axis=1), st["lat_c"].cumsum(axis=1)
        ready = ns >= CFG.min_latencies  # every request has a latency here
        thr = CFG.latency_p95_ratio * hist_quantile(cum_s, np.maximum(ns, 1)) + CFG.latency_slack_s
        j = np.searchsorted(LAT_GRID, thr, side="right") - 1
        below = np.where(j >= 0, np.take_along_axis(cum_c, np.maximum(j, 0)[:, None], axis=1)[:, 0], 0)
        llr_l = exceed_llr(nc - below, nc, CFG.latency_h0_exceed, CFG.latency_h1_exceed)
        l_fail = ready & (llr_l >= hi)
        l_pass = ready & (llr_l <= lo) & (nc >= CFG.min_latencies)

        s_fail, s_ok = np.zeros(k, bool), np.ones(k, bool)
        if sc.expected:
            vnc, vns = nc - ec, ns - es
            enough = np.minimum(vnc, vns) >= CFG.min_values
            with np.errstate(divide="ignore", invalid="ignore"):
                d = np.abs(st["val_c"].cumsum(axis=1) / vnc[:, None] - st["val_t"].cumsum(axis=1) / vns[:, None])
                s_fail = enough & (d.max(axis=1) > shift_allowance(vnc, vns, 1000, 1000, CFG))
            s_ok = enough & ~s_fail

        b_fail = np.zeros(k, bool)
        if sc.labels:
            lnc, lns = st["lnc"], st["lns"]
            enough = np.minimum(lnc, lns) >= CFG.min_labels
            with np.errstate(divide="ignore", invalid="ignore"):
                mc, ms = st["lsc"] / lnc, st["lss"] / lns
                z = label_z(mc, mc * (1 - mc) * lnc / (lnc - 1), lnc, ms, ms * (1 - ms) * lns / (lns - 1), lns,
                            CFG.label_margin)
                b_fail = enough & (z > label_critical_z(lnc, lns, CFG))

        fail = e_fail | l_fail | s_fail | b_fail
        ok = ~fail & e_pass & l_pass & s_ok
        done = fail | ok | (nc >= sc.max_canary_requests)  # undecided at the cap: the step times out
        ids = st["ids"][done]
        verdict[ids] = np.where(fail, FAIL, np.where(ok, PASS, WAIT))[done]
        at[ids] = nc[done]
        why[st["ids"][fail]] = [",".join(n for n, f in zip(("error", "latency", "shift", "labels"), x) if f)
                                for x in zip(e_fail[fail], l_fail[fail], s_fail[fail], b_fail[fail])]
        if done.any():
            st = {key: a[~done] for key, a in st.items()}
    return verdict, at, why, traces


def summary(name, verdict, at, why):
    fails = verdict == FAIL
    line = (f"{name:<34} pass {np.mean(verdict == PASS):7.1%}  fail {np.mean(fails):7.1%}  timeout "
            f"{np.mean(verdict == WAIT):5.1%}  canary requests at verdict: median {np.median(at):5.0f}, "
            f"p95 {np.quantile(at, 0.95):5.0f}")
    if fails.any():
        kinds, counts = np.unique(why[fails], return_counts=True)
        line += "  failed on " + ", ".join(f"{k} {c}" for k, c in zip(kinds, counts))
    print(line)


@pytest.mark.parametrize("share", [0.1, 0.5])
@pytest.mark.parametrize("base", [0.0, 0.01, 0.05])
def test_error_regression_caught(base, share):
    within = DETECTS_WITHIN_REQUESTS_BY_RATE_SHARE[(base, share)]
    sc = Scenario(share=share, p_stable=base, p_canary=base + 0.02, max_canary_requests=within)
    verdict, at, why, _ = simulate(sc, seed=int(base * 1000 + share * 10))
    summary(f"errors {base:.0%} -> {base + 0.02:.0%}, share {share:.0%}", verdict, at, why)
    power = np.mean(verdict == FAIL)  # the simulation stops at `within` canary requests
    print(f"  power within {within} canary requests: {power:.1%}")
    assert power >= 0.95 and np.mean(why[verdict == FAIL] == "error") > 0.99
    assert within <= DETECTS_WITHIN_REQUESTS


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_healthy_retrained_candidate_promoted(share):
    sc = Scenario(share=share, p_stable=0.01, p_canary=0.01, expected=True, labels=True)
    verdict, at, why, _ = simulate(sc, seed=int(share * 100) + 7)
    summary(f"healthy retrained, share {share:.0%}", verdict, at, why)
    assert np.mean(verdict == PASS) >= 0.99


@pytest.mark.parametrize(("base", "share"), [(0.0, 0.1), (0.05, 0.5)])
def test_healthy_at_other_error_rates_promoted(base, share):
    verdict, at, why, _ = simulate(Scenario(share=share, p_stable=base, p_canary=base), seed=int(base * 100) + 11)
    summary(f"healthy, errors {base:.0%}, share {share:.0%}", verdict, at, why)
    assert np.mean(verdict == PASS) >= 0.99


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_latency_regression_caught(share):
    sc = Scenario(share=share, p_stable=0.01, p_canary=0.01, latency_factor=2.0,
                  max_canary_requests=LATENCY_DETECTS_WITHIN_REQUESTS)
    verdict, at, why, _ = simulate(sc, seed=int(share * 100) + 3)
    summary(f"latency x2, share {share:.0%}", verdict, at, why)
    power = np.mean(verdict == FAIL)
    print(f"  power within {LATENCY_DETECTS_WITHIN_REQUESTS} canary requests: {power:.1%}")
    assert power >= 0.95 and all("latency" in w for w in why[verdict == FAIL])


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_latency_within_tolerance_promoted(share):
    sc = Scenario(share=share, p_stable=0.01, p_canary=0.01, latency_factor=1.1)
    verdict, at, why, _ = simulate(sc, seed=int(share * 100) + 5)
    summary(f"latency x1.1 (tolerated 1.2), share {share:.0%}", verdict, at, why)
    assert np.mean(verdict == PASS) >= 0.99


def test_output_shift_beyond_expectation_caught():
    """Live outputs moved the other way (-0.15 where the shadow pairs say +0.05): KS about 0.45 to the expectation."""
    sc = Scenario(share=0.5, p_stable=0.01, p_canary=0.01, canary_shift=-0.15, expected=True)
    verdict, at, why, _ = simulate(sc, seed=13)
    summary("outputs shifted the wrong way", verdict, at, why)
    assert np.mean(verdict == FAIL) >= 0.95 and np.mean(why[verdict == FAIL] == "shift") > 0.99


def replay(trace):
    """Feed a traced canary's polls through `evaluate`; (verdict, canary requests) at its first non-wait."""
    arms = {a: {"requests": 0, "errors": 0, "latencies": [], "values": [], "labels": []} for a in "cs"}
    for poll in trace["polls"]:
        for a in "cs":
            for key in ("requests", "errors"):
                arms[a][key] += poll[a][key]
            for key in ("latencies", "values", "labels"):
                arms[a][key] += poll[a][key]
        s, c = (ArmSample(requests=arms[a]["requests"], errors=arms[a]["errors"], latencies_s=arms[a]["latencies"],
                          values=arms[a]["values"], labels=arms[a]["labels"]) for a in "sc")
        r = evaluate(s, c, CFG, trace.get("expected"))
        if r.verdict != "wait":
            return r.verdict, r.canary_requests
    return "wait", arms["c"]["requests"]


@pytest.mark.parametrize(
    "sc",
    [
        Scenario(share=0.5, p_stable=0.01, p_canary=0.01, expected=True, labels=True, trace=list(range(12))),
        Scenario(share=0.1, p_stable=0.01, p_canary=0.03, trace=list(range(6))),
        Scenario(share=0.5, p_stable=0.01, p_canary=0.01, latency_factor=2.0, trace=list(range(6))),
    ],
    ids=["healthy", "errors", "latency"],
)
def test_vectorised_matches_evaluate(sc):
    verdict, at, _, traces = simulate(sc, seed=99, n=max(sc.trace) + 1)
    names = {WAIT: "wait", PASS: "pass", FAIL: "fail"}
    for i, trace in traces.items():
        assert replay(trace) == (names[verdict[i]], at[i]), f"canary {i}"


NAN = float("nan")
EMPTY = ArmSample(requests=0, errors=0, latencies_s=[], values=[])
NO_DATA = {  # category -> variants: (stable, canary) -> (stable, canary) with data missing
    "zero canary requests": [lambda s, c: (s, EMPTY),
                             lambda s, c: (s, c.model_copy(update={"requests": 0, "errors": 0}))],
    "zero stable requests": [lambda s, c: (EMPTY, c),
                             lambda s, c: (s.model_copy(update={"requests": 0, "errors": 0}), c)],
    "no latencies": [lambda s, c: (s.model_copy(update={"latencies_s": []}), c.model_copy(update={"latencies_s": []})),
                     lambda s, c: (s, c.model_copy(update={"latencies_s": []})),
                     lambda s, c: (s.model_copy(update={"latencies_s": s.latencies_s[:20]}), c)],
    "missing values": [lambda s, c: (s, c.model_copy(update={"values": []})),
                       lambda s, c: (s.model_copy(update={"values": []}), c),
                       lambda s, c: (s.model_copy(update={"values": []}), c.model_copy(update={"values": []}))],
    "NaN": [lambda s, c: (s, c.model_copy(update={"latencies_s": c.latencies_s + [NAN]})),
            lambda s, c: (s.model_copy(update={"latencies_s": [float("inf")] + s.latencies_s}), c),
            lambda s, c: (s.model_copy(update={"values": [NAN] + s.values}), c),
            lambda s, c: (s, c.model_copy(update={"labels": c.labels + [NAN]})),
            lambda s, c: (s, c.model_copy(update={"requests": NAN})),
            lambda s, c: (s.model_copy(update={"errors": NAN}), c),
            lambda s, c: (s, {**c.model_dump(), "requests": NAN})],
    "invalid counts": [lambda s, c: (s, c.model_copy(update={"errors": c.requests + 1})),
                       lambda s, c: (s.model_copy(update={"requests": -1, "errors": 0}), c),
                       lambda s, c: (s, c.model_copy(update={"errors": -1}))],
}


def test_no_data_never_passes():
    """1,000 healthy canaries (all pass intact), each seen again with data missing in every category."""
    rng = np.random.default_rng(21)
    expected = ExpectedShift(source="offline", candidate=np.clip(stable_outputs(rng, 1000) + SHIFT, 0, 1).tolist(),
                             stable=stable_outputs(rng, 1000).tolist())
    outcomes = {name: {"pass": 0, "wait": 0, "fail": 0} for name in ["intact", *NO_DATA]}
    for _ in range(N):
        nc = int(rng.integers(CFG.min_requests, 2 * CFG.min_requests))
        arms = []
        for n, shift in ((nc * int(rng.choice([1, 3])), 0.0), (nc, SHIFT)):  # error-free: their errors pass surely
            arms.append(ArmSample(requests=n, errors=0, latencies_s=LAT_GRID[latency_bins(rng, n)].tolist(),
                                  values=np.clip(stable_outputs(rng, n) + shift, 0, 1).tolist(),
                                  labels=(rng.random(n // 2) < 0.9).astype(float).tolist()))
        outcomes["intact"][evaluate(*arms, CFG, expected).verdict] += 1
        for name, variants in NO_DATA.items():
            knock = variants[rng.integers(len(variants))]
            exp = expected if name in ("missing values", "NaN") else None  # values are only gated with one
            outcomes[name][evaluate(*knock(*arms), CFG, exp).verdict] += 1
    for name, counts in outcomes.items():
        print(f"no data, {name:<22} {counts}")
    assert outcomes["intact"]["pass"] >= 0.99 * N  # so it is the missing data that keeps them from passing
    assert all(counts["pass"] == 0 for name, counts in outcomes.items() if name != "intact")
