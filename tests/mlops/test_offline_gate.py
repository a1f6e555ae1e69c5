"""The offline gate's decision from two held-out evaluations: thresholds, pairing, the interval."""

import numpy as np
import pytest

from djserve.mlops.offline_gate import HeldOut, OfflineGateConfig, Threshold, decide, paired_bootstrap

RNG = np.random.default_rng(0)
N = 400
TRUTH = RNG.random(N) < 0.5  # which items a model gets right, shared difficulty


def held(uri: str, correct: np.ndarray, dataset: str = "d1", **metrics) -> HeldOut:
    acc = float(correct.mean())
    base = {"heldout.accuracy": acc, "heldout.macro_f1": acc, "heldout.accuracy.baseline_majority": 0.34}
    return HeldOut(uri=uri, dataset_hash=dataset, headline="heldout.accuracy", metrics={**base, **metrics},
                   samples=correct.astype(float).tolist())


def flip(correct: np.ndarray, share: float, to: bool, seed: int) -> np.ndarray:
    """Turn `share` of the items that are not `to` into `to`."""
    out = correct.copy()
    idx = np.flatnonzero(out != to)
    out[np.random.default_rng(seed).choice(idx, int(share * len(idx)), replace=False)] = to
    return out


CHAMPION = flip(np.zeros(N, bool), 0.88, True, 1)
CFG = OfflineGateConfig(resamples=2000)


def test_an_equal_candidate_passes_non_inferiority_and_a_clearly_worse_one_fails():
    same = held("models:/s/2", CHAMPION.copy())
    v = decide("sentiment", same, held("models:/s/1", CHAMPION), CFG)
    assert v.verdict == "pass" and v.comparison.difference == 0 and v.comparison.required == -0.01
    worse = held("models:/s/3", flip(CHAMPION, 0.06, False, 2))
    v = decide("sentiment", worse, held("models:/s/1", CHAMPION), CFG)
    assert v.verdict == "fail" and v.comparison.ci_high < 0
    assert any("not shown not worse" in r for r in v.reasons)


def test_superiority_needs_the_gain_with_confidence():
    better = held("models:/s/2", flip(CHAMPION, 0.9, True, 3))  # about +11 points
    champion = held("models:/s/1", CHAMPION)
    assert decide("sentiment", better, champion, CFG.model_copy(update={"min_improvement": 0.05})).verdict == "pass"
    v = decide("sentiment", better, champion, CFG.model_copy(update={"min_improvement": 0.15}))
    assert v.verdict == "fail" and v.comparison.test == "superiority"


def test_absolute_thresholds_apply_without_a_champion():
    low = held("models:/s/1", flip(np.zeros(N, bool), 0.7, True, 4))  # accuracy ~0.70 < 0.85
    v = decide("sentiment", low, None, CFG)
    assert v.verdict == "fail" and v.comparison is None and any("< 0.85" in r for r in v.reasons)
    regression = HeldOut(uri="m", dataset_hash="d", headline="overall.r2", samples=[0.0],
                         metrics={"overall.r2": -0.01, "overall.r2.baseline_constant": 0.0, "overall.mae": 0.04})
    v = decide("judge", regression, None, CFG)
    assert v.verdict == "fail" and any("does not beat the constant baseline" in r for r in v.reasons)
    assert not Threshold(metric="missing", min=0).check({})[0]  # a missing metric is never a pass


def test_evaluations_on_different_data_are_not_compared():
    v = decide("sentiment", held("models:/s/2", CHAMPION, dataset="d2"), held("models:/s/1", CHAMPION), CFG)
    assert v.verdict == "fail" and "not comparable" in v.reasons[0]


def test_pairing_makes_the_interval_narrower_than_the_unpaired_spread():
    a = RNG.normal(0, 1, 300)
    b = a + RNG.normal(0.1, 0.05, 300)  # b is a little better on every item
    diff, low, high = paired_bootstrap(b.tolist(), a.tolist(), 0.95, 2000, 0)
    assert low > 0.085 and high < 0.115 and low < diff < high


@pytest.mark.parametrize("seed", range(3))
def test_the_bootstrap_is_seeded(seed):
    args = (RNG.random(50).tolist(), RNG.random(50).tolist(), 0.95, 500, seed)
    assert paired_bootstrap(*args) == paired_bootstrap(*args)
