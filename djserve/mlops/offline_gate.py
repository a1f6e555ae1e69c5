"""The offline gate: before any traffic, is the candidate good enough, and not worse than the champion?

Both are scored on the family's held-out set (the same data, item by item). The candidate passes when

1. it meets the family's absolute thresholds (`FAMILY_THRESHOLDS`: the design documents' accuracy
   > 0.85, F1 > 0.80 and MAE < 0.5 on the human 0-10 scale, and beating the trivial baseline its
   evaluation reports), and
2. the paired difference of the headline metric (candidate - champion) has a bootstrap confidence
   interval whose lower end is above `-margin` (non-inferiority, the default), or above
   `min_improvement` x |champion| when the promotion asks for a real gain (the design documents' "5% better").

Each item's share of the headline comes with the evaluation (`samples`: their mean is the headline),
so resampling items resamples the metric itself, and pairing removes the variance both versions
share (the hard items are hard for both).
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import numpy as np
from pydantic import BaseModel, Field


class Threshold(BaseModel):
    metric: str
    """a key of the evaluation's metrics, e.g. "heldout.accuracy" or "overall.mae\""""
    min: Optional[float] = None
    max: Optional[float] = None
    above_baseline: Optional[str] = None
    """the metric must beat this baseline of the same evaluation (e.g. "constant", "popularity")"""

    def check(self, metrics: dict[str, float]) -> tuple[bool, str]:
        value = metrics.get(self.metric)
        if value is None or not np.isfinite(value):
            return False, f"{self.metric} is missing from the evaluation"
        if self.min is not None and not value >= self.min:
            return False, f"{self.metric} {value:.3f} < {self.min:g}"
        if self.max is not None and not value <= self.max:
            return False, f"{self.metric} {value:.3f} > {self.max:g}"
        if self.above_baseline is not None:
            base = metrics.get(f"{self.metric}.baseline_{self.above_baseline}")
            if base is None:
                return False, f"{self.metric}: the evaluation has no {self.above_baseline} baseline"
            if not value > base:
                return False, f"{self.metric} {value:.3f} does not beat the {self.above_baseline} baseline {base:.3f}"
        return True, f"{self.metric} {value:.3f} ok"


_REGRESSION = [Threshold(metric="overall.mae", max=0.05), Threshold(metric="overall.r2", above_baseline="constant")]

FAMILY_THRESHOLDS: dict[str, list[Threshold]] = {
    # Scores are in [0, 1]: the design documents' MAE < 0.5 on a 0-10 scale is 0.05 here.
    "judge": _REGRESSION,
    "technical": _REGRESSION,
    "creative": _REGRESSION,
    "sentiment": [Threshold(metric="heldout.accuracy", min=0.85), Threshold(metric="heldout.macro_f1", min=0.80),
                  Threshold(metric="heldout.accuracy", above_baseline="majority")],
    "beat_tracker": [Threshold(metric="heldout.f_measure", above_baseline="librosa")],
    "recommender": [Threshold(metric="heldout.ndcg_at_10", above_baseline="popularity")],
}

FAMILY_MARGINS: dict[str, float] = {"judge": 0.02, "technical": 0.02, "creative": 0.02, "sentiment": 0.01,
                                    "beat_tracker": 0.01, "recommender": 0.01}
"""How much worse than the champion (in headline units) still counts as not worse."""


class OfflineGateConfig(BaseModel):
    thresholds: dict[str, list[Threshold]] = Field(default_factory=lambda: dict(FAMILY_THRESHOLDS))
    margins: dict[str, float] = Field(default_factory=lambda: dict(FAMILY_MARGINS))
    min_improvement: Optional[float] = Field(None, ge=0)
    """require the candidate to be better by this fraction of the champion's headline (0.05 = 5%)"""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    """two-sided level of the bootstrap interval (its lower end is a one-sided 97.5% bound)"""
    resamples: int = Field(4000, ge=200)
    seed: int = 0


class HeldOut(BaseModel):
    """One registered version's held-out evaluation, as training logs it."""

    uri: str
    dataset_hash: str
    headline: str
    metrics: dict[str, float]
    samples: list[float]
    run_id: str = ""
    summaries: list[float] = []
    """per item, the output summary the gateway monitors (mean of the scores), where the evaluation
    kept its predictions: what the version's live outputs should look like on this kind of input"""

    @property
    def value(self) -> float:
        return self.metrics[self.headline]


Evaluator = Callable[[str, int, str], dict]
"""(family, registered version, profile) -> the evaluation payload (headline, metrics, samples,
dataset_hash, run_id) of scoring that version on the profile's held-out data."""


class Comparison(BaseModel):
    champion: str
    champion_value: float
    difference: float
    """candidate - champion, in headline units"""
    ci_low: float
    ci_high: float
    confidence: float
    required: float
    """the lower end must exceed this: -margin, or min_improvement x |champion|"""
    test: Literal["non-inferiority", "superiority"]
    items: int


class OfflineVerdict(BaseModel):
    verdict: Literal["pass", "fail"]
    reasons: list[str]
    candidate: str
    headline: str = ""
    candidate_value: Optional[float] = None
    checks: list[str] = []
    comparison: Optional[Comparison] = None
    forced: bool = False

    def summary(self) -> str:
        head = f"{self.headline} {self.candidate_value:.4f}" if self.candidate_value is not None else self.candidate
        if self.comparison:
            c = self.comparison
            head += (f", {c.difference:+.4f} vs champion {c.champion} ({c.confidence:.0%} CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}],"
                     f" {c.test} needs > {c.required:+.4f}, {c.items} items)")
        return f"{self.verdict}: {head}" + (f"; {'; '.join(self.reasons)}" if self.reasons else "")


def paired_bootstrap(candidate: list[float], champion: list[float], confidence: float, resamples: int, seed: int) -> tuple[float, float, float]:
    """(mean difference, CI low, CI high) of candidate - champion over resampled items (percentile)."""
    d = np.asarray(candidate, dtype=np.float64) - np.asarray(champion, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 500):  # chunks keep memory flat for large held-out sets
        stop = min(start + 500, resamples)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(d.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def decide(family: str, candidate: HeldOut, champion: HeldOut | None, cfg: OfflineGateConfig) -> OfflineVerdict:
    reasons, checks = [], []
    for threshold in cfg.thresholds.get(family, []):
        ok, line = threshold.check(candidate.metrics)
        checks.append(line)
        if not ok:
            reasons.append(line)
    comparison = None
    if champion is not None:
        if champion.dataset_hash != candidate.dataset_hash or len(champion.samples) != len(candidate.samples):
            reasons.append(f"the champion {champion.uri} was scored on other data ({champion.dataset_hash[:12]}, "
                           f"{len(champion.samples)} items) than the candidate ({candidate.dataset_hash[:12]}, "
                           f"{len(candidate.samples)} items): not comparable")
        elif not candidate.samples:
            reasons.append("the evaluation has no per-item samples: no interval, no verdict")
        else:
            diff, low, high = paired_bootstrap(candidate.samples, champion.samples, cfg.confidence, cfg.resamples, cfg.seed)
            if cfg.min_improvement is not None:
                test, required = "superiority", cfg.min_improvement * abs(champion.value)
            else:
                test, required = "non-inferiority", -cfg.margins.get(family, 0.0)
            comparison = Comparison(champion=champion.uri, champion_value=champion.value, difference=diff, ci_low=low,
                                    ci_high=high, confidence=cfg.confidence, required=required, test=test,
                                    items=len(candidate.samples))
            if not low > required:
                what = "better by the required gain" if test == "superiority" else "not worse"
                reasons.append(f"not shown {what} than the champion: {candidate.headline} difference {diff:+.4f}, "
                               f"CI low {low:+.4f} <= {required:+.4f}")
    return OfflineVerdict(verdict="fail" if reasons else "pass", reasons=reasons, candidate=candidate.uri,
                          headline=candidate.headline, candidate_value=candidate.value, checks=checks, comparison=comparison)
