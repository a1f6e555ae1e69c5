"""Online canary gates: sequential tests on live traffic, judged against the stable version.

While a canary version takes a share of live traffic next to the stable version, the promotion
loop polls `evaluate` about once a second. Each `ArmSample` holds CUMULATIVE outcomes since the
current canary step began (not a rolling window; start again from zero when the step changes): the
tests stay valid under repeated looks only because the evidence accumulates. "fail" (roll back) if
any check fails; "pass" (ramp on) only if error_rate and latency_p95 both pass and nothing fails;
otherwise "wait" -- also the answer to missing, empty or malformed data (fail-closed: the caller
rolls back when its step timeout runs out). `evaluate` never raises on bad data.

error_rate    Wald's SPRT, H0 "canary error rate = stable's" vs H1 "= stable's +
              `error_rate_regression`" (absolute), on the cumulative counts of both arms at each poll:
              fail at LLR >= log((1-beta)/alpha), pass at LLR <= log(beta/(1-alpha)) once both arms
              have `min_requests`. The stable rate is unknown, so the LLR is a profile likelihood
              ratio: the stable rate is fitted to both arms under each hypothesis. (The simpler
              plug-in, stable rate = its observed rate taken as exact, ignores the stable's own noise
              and rolled back ~5% of healthy canaries at a 50% share in simulation; with the
              profile, <= 0.5%.) With a known stable rate the likelihood ratio is a martingale and
              Ville's inequality bounds the chance of ever crossing the fail bound by alpha/(1-beta)
              however often it is polled; the simulation checks the profile version.
latency_p95   the same SPRT (with a known H0) on how many canary latencies exceed the stable's p95 x
              `latency_p95_ratio` + `latency_slack_s`: H0 exceedance rate `latency_h0_exceed` (the
              canary's p95 is within tolerance) vs H1 `latency_h1_exceed`. The stable needs
              `min_latencies` latencies to set the threshold, the canary as many to pass.
output_shift  only with an `ExpectedShift` (else "not_gated"): a retrained model's outputs are meant
              to move. Each live stable output is moved by the expected shift at its percentile (the
              expectation's candidate minus stable output there; at the edge shift beyond its range)
              and the KS distance of the live canary outputs to that prediction fails the canary
              beyond `output_shift_margin` + a noise allowance for the four samples. Unlike a
              difference of KS distances (live canary-vs-stable minus expected candidate-vs-stable)
              it catches a shift of the expected size in the wrong direction. A veto for gross
              shifts: the allowance is ~0.3 KS at a few hundred requests and 1,000 reference pairs.
labels        one-sided z-test that the canary's mean quality is below the stable's by more than
              `label_margin`; vetoes, never passes alone; "not_gated" below `min_labels` per arm.
              A veto for clear drops only (z > ~5): 1/0 labels at 90% on the stable catch a canary at
              65% with 300 labels per arm, at 75% with 1,000.

The KS and label tests are repeated at every poll too: at N samples (both arms) they spend
alpha_N = alpha * M / (N (N + 1)), N >= M (the minimum), which sums to alpha over all N, so a
union bound over every look keeps their false rollbacks <= alpha.

Measured by tests/mlops/test_gate_simulation.py (1,000 seeded canaries per scenario, default
config, canary share 10% and 50%, ~5 canary requests per poll, a verdict at every poll):
a +2 pp error-rate regression fails with >= 95% power within `DETECTS_WITHIN_REQUESTS` canary
requests, sooner at lower stable error rates or a 10% share (`DETECTS_WITHIN_REQUESTS_BY_RATE_SHARE`:
97-98% power at those counts; median 135 / 440 canary requests at 0% -> 2% and a 10% / 50% share,
500 / 1,000 at 1% -> 3%, 1,650 / 3,050 at 5% -> 7%); a 2x latency regression within
`LATENCY_DETECTS_WITHIN_REQUESTS` (median 30 / 100); healthy retrained canaries (same error rate
and latencies, outputs shifted as expected) pass in 99.7-100% (median ~400 canary requests at 1%
errors, 1,500 at 5% and a 50% share), false rollbacks 0-0.3%. Healthy canaries need up to ~8,000
canary requests at 5% errors and a 50% share (0.4% of them): size the step timeout for ~15,000.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy.special import ndtri, xlogy

DETECTS_WITHIN_REQUESTS_BY_RATE_SHARE = {
    (0.00, 0.1): 500, (0.00, 0.5): 1_100,
    (0.01, 0.1): 1_800, (0.01, 0.5): 3_200,
    (0.05, 0.1): 5_500, (0.05, 0.5): 10_000,
}
"""Canary requests within which a +2 pp error-rate regression fails with >= 95% power, by (stable error
rate, canary share). At a 50% share the stable is as noisy as the canary: about twice the requests."""
DETECTS_WITHIN_REQUESTS = max(DETECTS_WITHIN_REQUESTS_BY_RATE_SHARE.values())
"""The same for any stable error rate up to 5% and canary share from 10% to 50%."""
LATENCY_DETECTS_WITHIN_REQUESTS = 200
"""Canary requests within which a 2x latency regression (lognormal, sigma 0.5) fails with >= 95% power."""

Verdict = Literal["pass", "fail", "wait", "not_gated"]


class ArmSample(BaseModel):
    """One version's live outcomes since the current canary step began."""

    requests: int  # cumulative requests since the step began (ok + failed), >= 0
    errors: int  # of which failed (5xx-class failures of the version), >= 0
    latencies_s: list[float]  # latencies of (some of) those requests, most recent last; may be fewer than `requests`
    values: list[float]  # per-request output summaries of successful requests
    labels: list[float] = []  # per-label quality scores from platform feedback (higher is better)


class ExpectedShift(BaseModel):
    """The candidate's expected outputs against the stable's on the same reference inputs."""

    source: str  # "shadow" (candidate and stable on identical live requests) or "offline" (held-out set)
    candidate: list[float]  # candidate's output summaries on the reference inputs
    stable: list[float]  # stable's output summaries on the same inputs (paired or not)


class OnlineGateConfig(BaseModel):
    min_requests: int = Field(200, ge=1)  # requests per arm before any pass
    alpha: float = Field(0.002, gt=0, lt=0.5)  # false-rollback rate of each SPRT (error, latency)
    beta: float = Field(0.02, gt=0, lt=0.5)  # miss rate of each SPRT at its H1
    error_rate_regression: float = Field(0.02, gt=0, lt=1)  # H1: canary error rate = stable's + this (absolute)
    min_latencies: int = Field(100, ge=20)  # latencies per arm before the latency check can pass
    latency_p95_ratio: float = Field(1.2, ge=1)  # tolerated canary p95 / stable p95
    latency_slack_s: float = Field(0.005, ge=0)  # ... plus this, so jitter on tiny latencies is tolerated
    latency_h0_exceed: float = Field(0.05, gt=0, lt=1)  # H0: share of canary latencies above the tolerated p95
    latency_h1_exceed: float = Field(0.20, gt=0, lt=1)  # H1: that share for a regression worth a rollback
    min_values: int = Field(100, ge=10)  # output values per arm before the output shift is judged
    output_shift_margin: float = Field(0.1, ge=0, le=1)  # KS distance to the expected outputs tolerated beyond noise
    output_shift_alpha: float = Field(0.001, gt=0, lt=1)  # false-rollback rate of the output-shift test, all looks
    min_labels: int = Field(100, ge=2)  # labels per arm before the label gate can veto
    label_margin: float = Field(0.05, ge=0)  # tolerated drop of mean label quality (stable - canary)
    label_alpha: float = Field(0.001, gt=0, lt=1)  # false-rollback rate of the label test, all looks

    @model_validator(mode="after")
    def _latency_hypotheses(self) -> OnlineGateConfig:
        if self.latency_h0_exceed >= self.latency_h1_exceed:
            raise ValueError("latency_h0_exceed must be below latency_h1_exceed")
        return self


class Check(BaseModel):
    name: str  # "error_rate", "latency_p95", "output_shift", "labels" (or "input")
    verdict: Verdict
    detail: str  # one human-readable line with the figures
    figures: dict[str, float | int | None] = {}


class GateResult(BaseModel):
    verdict: Literal["pass", "fail", "wait"]
    reasons: list[str]  # detail lines of the failing checks (fail) or waiting checks (wait)
    checks: list[Check]
    canary_requests: int
    stable_requests: int

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON (non-finite figures become null) for the JSON-lines log and MLflow tags."""
        d = self.model_dump()
        for c in d["checks"]:
            c["figures"] = {k: v if v is None or math.isfinite(v) else None for k, v in c["figures"].items()}
        return d


# --- statistics (array-friendly: the simulation runs them over 1,000 canaries at once) -----------


def sprt_bounds(alpha: float, beta: float) -> tuple[float, float]:
    """Wald's (pass, fail) bounds on the log-likelihood ratio."""
    return math.log(beta / (1 - alpha)), math.log((1 - beta) / alpha)


def error_llr(e_c, n_c, e_s, n_s, regression: float):
    """Profile LLR of H1 (canary error rate = stable's + regression) against H0 (equal rates): the
    unknown stable rate is fitted to both arms under each hypothesis, so its sampling noise counts."""
    e_c, n_c, e_s, n_s = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (e_c, n_c, e_s, n_s)))
    d = regression

    def loglik(p_s, p_c):
        return xlogy(e_s, p_s) + xlogy(n_s - e_s, 1 - p_s) + xlogy(e_c, p_c) + xlogy(n_c - e_c, 1 - p_c)

    a_s, b_s, a_c, b_c = e_s, n_s - e_s, e_c, n_c - e_c
    with np.errstate(divide="ignore", invalid="ignore"):
        # The H1 fit of the stable rate lies between the two arms' own estimates (stable, canary - d):
        # bisect the derivative of the concave H1 log-likelihood there (its maximum is flat: 2^-16 is plenty).
        one, other = np.clip(e_s / n_s, 0, 1 - d), np.clip(e_c / n_c - d, 0, 1 - d)
        lo, hi = np.minimum(one, other), np.maximum(one, other)
        for _ in range(16):
            p = (lo + hi) / 2
            up = a_s / p - b_s / (1 - p) + a_c / (p + d) - b_c / (1 - d - p) > 0
            lo, hi = np.where(up, p, lo), np.where(up, hi, p)
        h1 = np.maximum(loglik(lo, lo + d), loglik(hi, hi + d))  # the maximum may be on a bound (no errors)
    pooled = np.divide(e_c + e_s, n_c + n_s, out=np.zeros(e_c.shape), where=n_c + n_s > 0)
    return h1 - loglik(pooled, pooled)


def exceed_llr(k, m, q0: float, q1: float):
    """LLR of exceedance rate q1 against q0, for k exceedances in m latencies."""
    return k * math.log(q1 / q0) + (m - k) * math.log((1 - q1) / (1 - q0))


def spent_alpha(alpha: float, n_total, n_min: int):
    """This look's share of `alpha` at n_total samples; the shares over n_total >= n_min sum to alpha."""
    return alpha * n_min / (n_total * (n_total + 1.0))


def shift_allowance(n_c, n_s, m_c, m_s, cfg: OnlineGateConfig):
    """Largest KS distance to the expected outputs that is not a failure: margin + noise of all four samples."""
    a = spent_alpha(cfg.output_shift_alpha, n_c + n_s, 2 * cfg.min_values)
    return cfg.output_shift_margin + np.sqrt(np.log(2 / a) / 2 * (1 / n_c + 1 / n_s + 1 / m_c + 1 / m_s))


def label_z(mean_c, var_c, n_c, mean_s, var_s, n_s, margin: float):
    """z of "the canary is worse than the stable by more than margin" (large = confidently worse)."""
    gap = np.asarray(mean_s - mean_c - margin, dtype=float)
    se = np.sqrt(var_c / n_c + var_s / n_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, gap / np.where(se > 0, se, 1.0), np.where(gap > 0, np.inf, -np.inf))


def label_critical_z(n_c, n_s, cfg: OnlineGateConfig):
    """One-sided normal critical value at this look's share of `label_alpha`."""
    return -ndtri(spent_alpha(cfg.label_alpha, n_c + n_s, 2 * cfg.min_labels))


def expected_map(values, candidate, stable) -> np.ndarray:
    """Predict the candidate's output for each stable output: add the expected shift at its percentile
    (candidate minus stable output at that percentile of the reference lists). Beyond the reference
    range the shift at its edge applies, so a reference set narrower than live traffic still works."""
    c, s = np.sort(candidate), np.sort(stable)
    a = np.searchsorted(s, values, side="right")  # reference stable outputs <= each value
    i = -(-a * len(c) // len(s)) - 1  # the candidate's quantile there: ceil(a / len(s) * len(c)) - 1, exactly
    return values + c[np.clip(i, 0, len(c) - 1)] - s[np.clip(a - 1, 0, len(s) - 1)]


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov distance (sup of the ECDFs' difference)."""
    a, b = np.sort(a), np.sort(b)
    z = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, z, "right") / len(a) - np.searchsorted(b, z, "right") / len(b))))


# --- checks --------------------------------------------------------------------------------------


def _finite(name: str, xs, nonneg: bool = False) -> tuple[np.ndarray | None, str | None]:
    try:
        arr = np.asarray(xs, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        return None, f"{name} are not numbers"
    if not np.isfinite(arr).all() or (nonneg and (arr < 0).any()):
        return None, f"{name} hold NaN/inf{' or negatives' if nonneg else ''}"
    return arr, None


def _count_problem(name: str, arm: ArmSample) -> str | None:
    try:
        n, e = int(arm.requests), int(arm.errors)
        ok = n == arm.requests and e == arm.errors and 0 <= e <= n
    except (TypeError, ValueError, OverflowError):
        ok = False
    return None if ok else f"invalid {name} counts (requests={arm.requests!r}, errors={arm.errors!r})"


def _error_check(s: ArmSample, c: ArmSample, cfg: OnlineGateConfig) -> Check:
    bad = _count_problem("stable", s) or _count_problem("canary", c)
    if bad:
        return Check(name="error_rate", verdict="wait", detail=f"error rate: {bad}")
    if s.requests == 0 or c.requests == 0:
        return Check(name="error_rate", verdict="wait",
                     detail=f"error rate: {c.requests} canary / {s.requests} stable requests, need both > 0")
    lo, hi = sprt_bounds(cfg.alpha, cfg.beta)
    llr = float(error_llr(c.errors, c.requests, s.errors, s.requests, cfg.error_rate_regression))
    enough = min(c.requests, s.requests) >= cfg.min_requests
    verdict = "fail" if llr >= hi else "pass" if llr <= lo and enough else "wait"
    rc, rs = c.errors / c.requests, s.errors / s.requests
    need = "" if enough else f", pass after {cfg.min_requests} requests per arm"
    return Check(
        name="error_rate", verdict=verdict,
        detail=f"error rate: canary {c.errors}/{c.requests} = {rc:.2%} vs stable {s.errors}/{s.requests} = {rs:.2%};"
        f" SPRT LLR {llr:.2f} (fail >= {hi:.2f}, pass <= {lo:.2f}{need})",
        figures={"canary_rate": rc, "stable_rate": rs, "llr": llr, "pass_below": lo, "fail_above": hi},
    )


def _latency_check(s: ArmSample, c: ArmSample, cfg: OnlineGateConfig) -> Check:
    ls, bad_s = _finite("stable latencies", s.latencies_s, nonneg=True)
    lc, bad_c = _finite("canary latencies", c.latencies_s, nonneg=True)
    if bad_s or bad_c:
        return Check(name="latency_p95", verdict="wait", detail=f"latency: {bad_s or bad_c}")
    if len(ls) < cfg.min_latencies:
        return Check(name="latency_p95", verdict="wait",
                     detail=f"latency: {len(ls)} stable latencies, need {cfg.min_latencies} for its p95")
    p95_s = float(np.quantile(ls, 0.95))
    threshold = cfg.latency_p95_ratio * p95_s + cfg.latency_slack_s
    k, m = int((lc > threshold).sum()), len(lc)
    lo, hi = sprt_bounds(cfg.alpha, cfg.beta)
    llr = float(exceed_llr(k, m, cfg.latency_h0_exceed, cfg.latency_h1_exceed))
    enough = m >= cfg.min_latencies
    verdict = "fail" if llr >= hi else "pass" if llr <= lo and enough else "wait"
    p95_c = float(np.quantile(lc, 0.95)) if m else None
    shown = "n/a" if p95_c is None else f"{p95_c * 1000:.1f} ms"
    need = "" if enough else f", pass after {cfg.min_latencies} canary latencies"
    return Check(
        name="latency_p95", verdict=verdict,
        detail=f"latency: canary p95 {shown} vs stable {p95_s * 1000:.1f} ms; {k}/{m} canary requests above"
        f" {threshold * 1000:.1f} ms; SPRT LLR {llr:.2f} (fail >= {hi:.2f}, pass <= {lo:.2f}{need})",
        figures={"canary_p95_s": p95_c, "stable_p95_s": p95_s, "threshold_s": threshold, "exceedances": k,
                 "canary_latencies": m, "llr": llr, "pass_below": lo, "fail_above": hi},
    )


def _shift_check(s: ArmSample, c: ArmSample, cfg: OnlineGateConfig, expected: ExpectedShift | None) -> Check:
    if expected is None:
        return Check(name="output_shift", verdict="not_gated", detail="output shift: no expectation given, not gated")
    arrays = [_finite(n, x) for n, x in [("canary values", c.values), ("stable values", s.values),
                                         ("expected candidate values", expected.candidate),
                                         ("expected stable values", expected.stable)]]
    bad = next((b for _, b in arrays if b), None)
    vc, vs, ec, es = (a for a, _ in arrays)
    if bad or not len(ec) or not len(es):
        return Check(name="output_shift", verdict="wait", detail=f"output shift: {bad or 'the expectation is empty'}")
    if min(len(vc), len(vs)) < cfg.min_values:
        return Check(name="output_shift", verdict="wait",
                     detail=f"output shift: {len(vc)} canary / {len(vs)} stable values, need {cfg.min_values} each")
    d = ks_distance(vc, expected_map(vs, ec, es))
    allowed = float(shift_allowance(len(vc), len(vs), len(ec), len(es), cfg))
    raw, exp = ks_distance(vc, vs), ks_distance(ec, es)
    return Check(
        name="output_shift", verdict="fail" if d > allowed else "pass",
        detail=f"output shift: KS {d:.3f} of canary outputs to the {expected.source} expectation"
        f" (allowed {allowed:.3f}); canary vs stable KS {raw:.3f}, expected {exp:.3f}",
        figures={"ks_to_expected": d, "allowed": allowed, "ks_live": raw, "ks_expected": exp},
    )


def _label_check(s: ArmSample, c: ArmSample, cfg: OnlineGateConfig) -> Check:
    (qs, bad_s), (qc, bad_c) = _finite("stable labels", s.labels), _finite("canary labels", c.labels)
    if bad_s or bad_c:
        return Check(name="labels", verdict="wait", detail=f"labels: {bad_s or bad_c}")
    if min(len(qc), len(qs)) < cfg.min_labels:
        return Check(name="labels", verdict="not_gated", detail=f"labels: not enough labels ({len(qc)} canary /"
                     f" {len(qs)} stable, need {cfg.min_labels} each)")
    (mc, vc, nc), (ms, vs, ns) = ((float(q.mean()), float(q.var(ddof=1)), len(q)) for q in (qc, qs))
    z = float(label_z(mc, vc, nc, ms, vs, ns, cfg.label_margin))
    crit = float(label_critical_z(nc, ns, cfg))
    return Check(
        name="labels", verdict="fail" if z > crit else "pass",
        detail=f"labels: mean quality canary {mc:.4f} (n={nc}) vs stable {ms:.4f} (n={ns});"
        f" z {z:.2f} for a drop beyond {cfg.label_margin:g} (fail > {crit:.2f})",
        figures={"canary_mean": mc, "stable_mean": ms, "z": z, "fail_above": crit},
    )


def _coerce(model: type[BaseModel], name: str, x: Any) -> tuple[Any, str | None]:
    if isinstance(x, model):
        return x, None
    try:
        return model.model_validate(dict(x) if isinstance(x, Mapping) else x), None
    except (ValidationError, TypeError, ValueError) as e:
        return None, f"invalid {name}: {str(e).splitlines()[0]}"


def evaluate(
    stable: ArmSample, canary: ArmSample, cfg: OnlineGateConfig, expected: ExpectedShift | None = None
) -> GateResult:
    """Gate the canary against the stable on the same window. Never raises on bad data: it waits.
    (Mappings are accepted for the arms and the expectation too; one that does not validate is a "wait".)"""
    (s, bad_s), (c, bad_c) = _coerce(ArmSample, "stable sample", stable), _coerce(ArmSample, "canary sample", canary)
    bad_e = None
    if expected is not None:
        expected, bad_e = _coerce(ExpectedShift, "expected shift", expected)
    if s is None or c is None or bad_e:
        check = Check(name="input", verdict="wait", detail=bad_s or bad_c or bad_e)
        return GateResult(verdict="wait", reasons=[check.detail], checks=[check], canary_requests=0, stable_requests=0)
    checks = [_error_check(s, c, cfg), _latency_check(s, c, cfg), _shift_check(s, c, cfg, expected),
              _label_check(s, c, cfg)]
    by = {x.name: x.verdict for x in checks}
    if "fail" in by.values():
        verdict = "fail"
    elif by["error_rate"] == by["latency_p95"] == "pass" and "wait" not in by.values():
        verdict = "pass"
    else:
        verdict = "wait"
    reasons = [] if verdict == "pass" else [x.detail for x in checks if x.verdict == verdict] or ["no verdict"]
    counts = []
    for arm in (c, s):  # a malformed count (the error check waits on it) is reported as 0
        try:
            counts.append(max(int(arm.requests), 0))
        except (TypeError, ValueError, OverflowError):
            counts.append(0)
    return GateResult(verdict=verdict, reasons=reasons, checks=checks, canary_requests=counts[0],
                      stable_requests=counts[1])
