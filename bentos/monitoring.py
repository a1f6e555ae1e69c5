"""Live-traffic monitoring per model family and routed version: recent outcomes and drift.

Each request is observed as (family, version, value, latency, ok), where `value` is the scalar the
prediction is summarised by (`summarize`). The last WINDOW requests per (family, version) feed

- `stats`: the typed `/admin/stats` answer (djserve.live_stats.FamilyStats): totals since start,
  counts, error rate, latency quantiles and recent values (what a canary gate compares against the
  stable version), the platform's labels per version (`add_label`) and the paired comparison of a
  shadow version with the stable one (`observe_shadow`, `shadow_dropped`; bentos.shadow);
- `drift`: the design documents' drift check: the window's values
  against a stored baseline, two-sample Kolmogorov-Smirnov test, p < 0.05 = drift. The KS statistic
  is exported as the gauge `ai_model_drift_score{model_type, version}`.

Baselines are the shared file format of `djserve.drift`: MLOps sets one at promotion, the running
gateway picks it up on its next check.

prometheus_client is imported on first use only (see bentos/metrics.py): BentoML sets
PROMETHEUS_MULTIPROC_DIR after the service module is imported.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from djserve.drift import BaselineStore
from djserve.live_stats import WINDOW as LIVE_WINDOW
from djserve.live_stats import FamilyStats, LabelStats, ShadowStats, VersionStats
from djserve.traffic import FamilyPolicy

WINDOW = LIVE_WINDOW
"""Recent observations kept per (family, version), per label stream and per shadow comparison."""
DRIFT_P_VALUE = 0.05
CHECK_EVERY = 50

log = logging.getLogger("djserve.drift")

@functools.cache
def _drift_gauge():
    import prometheus_client as prom

    # livemax: with several workers, each holding its own window, report the worst live one.
    return prom.Gauge(
        "ai_model_drift_score",
        "Model drift detection score (two-sample KS statistic, recent predictions vs baseline)",
        ("model_type", "version"),
        multiprocess_mode="livemax",
    )


@dataclass(frozen=True)
class DriftResult:
    family: str
    version: int
    statistic: float
    p_value: float
    drifted: bool
    samples: int
    baseline_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


# --- summaries -----------------------------------------------------------------------------------

# family -> (output tensor, reduction); see `summarize`.
_SUMMARY_OUTPUT = {
    "judge": "component_scores",
    "technical": "technical_scores",
    "creative": "creative_scores",
    "sentiment": "logits",
    "recommender": "score",
    "beat_tracker": "beat_probability",
}
SENTIMENT_POSITIVE = 2  # label order: negative, neutral, positive (djserve.specs.sentiment.LABELS)


def summarize(family: str, outputs: Mapping[str, np.ndarray]) -> float:
    """The scalar one request's prediction is summarised by, from the batched Triton outputs.

    Outputs are the arrays Triton returned (first axis = batch); the result is one float for the
    whole request (all rows, all elements):

    ============  ==================  ===================================================
    family        output              summary
    ============  ==================  ===================================================
    judge         component_scores    mean of all component scores
    technical     technical_scores    mean of all technical scores
    creative      creative_scores     mean of all creative scores
    sentiment     logits              mean positive-class probability (row softmax; labels
                                      negative, neutral, positive)
    recommender   score               mean score over the request's scored items
    beat_tracker  beat_probability    mean beat probability
    ============  ==================  ===================================================
    """
    try:
        name = _SUMMARY_OUTPUT[family]
    except KeyError:
        raise ValueError(f"no summary for model family {family!r}") from None
    if name not in outputs:
        raise ValueError(f"{family} outputs lack {name!r} (have {sorted(outputs)})")
    arr = np.asarray(outputs[name], dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{family} output {name!r} is empty")
    if family == "sentiment":
        logits = arr.reshape(-1, arr.shape[-1])
        if logits.shape[1] <= SENTIMENT_POSITIVE:
            raise ValueError(f"sentiment logits have {logits.shape[1]} classes; expected 3")
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        return float(probs[:, SENTIMENT_POSITIVE].mean())
    return float(arr.mean())


# --- monitor -------------------------------------------------------------------------------------


class _Window:
    __slots__ = ("values", "latencies", "oks", "since_check", "requests_total", "errors_total")

    def __init__(self, size: int) -> None:
        self.values: deque[float | None] = deque(maxlen=size)
        self.latencies: deque[float] = deque(maxlen=size)
        self.oks: deque[bool] = deque(maxlen=size)
        self.since_check = 0
        self.requests_total = 0
        self.errors_total = 0


class _Labels:
    __slots__ = ("total", "metric", "scores")

    def __init__(self, size: int) -> None:
        self.total = 0
        self.metric: str | None = None
        self.scores: deque[float] = deque(maxlen=size)


#: Two output summaries closer than this are a tie when the shadow's ranking of consecutive
#: requests is compared with the stable's (float noise of batched kernels is ~1e-7).
RANK_TIE = 1e-6


def _sign(d: float) -> int:
    return 0 if abs(d) <= RANK_TIE else (1 if d > 0 else -1)


class _ShadowWindow:
    """The recent successful (stable, shadow) pairs of one (family, shadow version), and totals."""

    __slots__ = ("stable", "mirrored", "dropped", "errors", "stable_values", "shadow_values", "stable_lat",
                 "shadow_lat", "agree", "agree_sum", "touched")

    def __init__(self, size: int, stable: int) -> None:
        self.stable = stable
        self.mirrored = self.dropped = self.errors = 0
        self.stable_values: deque[float] = deque(maxlen=size)
        self.shadow_values: deque[float] = deque(maxlen=size)
        self.stable_lat: deque[float] = deque(maxlen=size)
        self.shadow_lat: deque[float] = deque(maxlen=size)
        self.agree: deque[float] = deque(maxlen=size)
        """1.0/0.0 per decision (per pair, or per consecutive pair of pairs for scores)"""
        self.agree_sum = 0.0
        self.touched = 0

    def add_agreement(self, flag: float) -> None:
        if len(self.agree) == self.agree.maxlen:
            self.agree_sum -= self.agree[0]
        self.agree.append(flag)
        self.agree_sum += flag

    @property
    def agreement(self) -> float | None:
        return self.agree_sum / len(self.agree) if self.agree else None


def _p95(values) -> float | None:
    return float(np.quantile(np.asarray(values, dtype=np.float64), 0.95)) if len(values) else None


class PredictionMonitor:
    """Rolling per-(family, version) windows of live outcomes, labels, shadow pairs, baselines, drift.

    Thread-safe; `observe` is O(1) except every `check_every`-th successful observation of a
    (family, version), which runs a KS test over at most `window` values. Totals (`requests_total`,
    `errors_total`, the shadow's) count since the monitor was created; the windows keep the last
    `window` observations.
    """

    def __init__(
        self, baseline_dir: Path, window: int = WINDOW, min_samples: int = 100, check_every: int = CHECK_EVERY
    ) -> None:
        if window < 1 or min_samples < 1 or check_every < 1:
            raise ValueError("window, min_samples and check_every must be >= 1")
        self.baseline_dir = Path(baseline_dir)
        self.baselines = BaselineStore(self.baseline_dir)
        self.window = window
        self.min_samples = min_samples
        self.check_every = check_every
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], _Window] = {}
        self._labels: dict[tuple[str, int], _Labels] = {}
        self._shadows: dict[tuple[str, int], _ShadowWindow] = {}
        self._touch = 0
        self._drifting: set[tuple[str, int]] = set()

    # -- observations --

    def observe(self, family: str, version: int, value: float | None, latency_s: float, ok: bool) -> None:
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                value = None
        check = False
        key = (family, int(version))
        with self._lock:
            w = self._windows.get(key)
            if w is None:
                w = self._windows[key] = _Window(self.window)
            w.values.append(value if ok else None)
            w.latencies.append(float(latency_s))
            w.oks.append(bool(ok))
            w.requests_total += 1
            if not ok:
                w.errors_total += 1
            if ok and value is not None:
                w.since_check += 1
                if w.since_check >= self.check_every:
                    w.since_check = 0
                    check = True
        if check:
            try:
                self.check_drift(family, key[1])
            except Exception:  # monitoring must never fail a request
                log.exception("drift check failed for %s v%s", family, key[1])

    def add_label(self, family: str, version: int, metric: str, score: float) -> None:
        """One label from the platform (`POST /ai/feedback`), scored against the version's prediction."""
        key = (family, int(version))
        with self._lock:
            lab = self._labels.get(key)
            if lab is None:
                lab = self._labels[key] = _Labels(self.window)
            lab.total += 1
            lab.metric = metric
            lab.scores.append(float(score))

    # -- shadow comparisons --

    def _shadow(self, family: str, stable: int, shadow: int) -> _ShadowWindow:
        key = (family, int(shadow))
        sw = self._shadows.get(key)
        if sw is None:
            sw = self._shadows[key] = _ShadowWindow(self.window, int(stable))
        sw.stable = int(stable)
        self._touch += 1
        sw.touched = self._touch
        return sw

    def shadow_dropped(self, family: str, stable: int, shadow: int) -> None:
        """A request not mirrored: the shadow queue was full."""
        with self._lock:
            self._shadow(family, stable, shadow).dropped += 1

    def observe_shadow(
        self,
        family: str,
        stable: int,
        shadow: int,
        *,
        ok: bool,
        stable_value: float | None = None,
        shadow_value: float | None = None,
        stable_decision: object = None,
        shadow_decision: object = None,
        stable_latency_s: float = 0.0,
        shadow_latency_s: float = 0.0,
    ) -> float | None:
        """One mirrored request answered (`ok`) or failed by the shadow; returns the agreement now.

        With decisions (sentiment labels, top recommendation) a pair agrees when they are equal;
        without (scores), a pair agrees with the pair before it when both versions rank the two
        requests the same way (ties within RANK_TIE)."""
        with self._lock:
            sw = self._shadow(family, stable, shadow)
            sw.mirrored += 1
            if not ok or stable_value is None or shadow_value is None:
                if not ok:
                    sw.errors += 1
                return sw.agreement
            stable_value, shadow_value = float(stable_value), float(shadow_value)
            if not (math.isfinite(stable_value) and math.isfinite(shadow_value)):
                return sw.agreement
            if stable_decision is not None or shadow_decision is not None:
                sw.add_agreement(float(stable_decision == shadow_decision))
            elif sw.stable_values:
                same = _sign(stable_value - sw.stable_values[-1]) == _sign(shadow_value - sw.shadow_values[-1])
                sw.add_agreement(float(same))
            sw.stable_values.append(stable_value)
            sw.shadow_values.append(shadow_value)
            sw.stable_lat.append(float(stable_latency_s))
            sw.shadow_lat.append(float(shadow_latency_s))
            return sw.agreement

    def _shadow_stats(self, family: str, policy: FamilyPolicy | None) -> ShadowStats | None:
        with self._lock:
            if policy is not None:
                if policy.shadow is None:
                    return None
                sw = self._shadows.get((family, int(policy.shadow)))
                if sw is None:
                    return ShadowStats(stable=policy.stable, shadow=policy.shadow)
                shadow = int(policy.shadow)
            else:
                mine = [(sw.touched, v) for (f, v), sw in self._shadows.items() if f == family]
                if not mine:
                    return None
                shadow = max(mine)[1]
                sw = self._shadows[(family, shadow)]
            stable_values, shadow_values = list(sw.stable_values), list(sw.shadow_values)
            stable_lat, shadow_lat = list(sw.stable_lat), list(sw.shadow_lat)
            out = ShadowStats(
                stable=sw.stable, shadow=shadow, mirrored_total=sw.mirrored, dropped_total=sw.dropped,
                errors_total=sw.errors, pairs=len(stable_values), agreement=sw.agreement,
            )
        if stable_values:
            diff = np.asarray(shadow_values, dtype=np.float64) - np.asarray(stable_values, dtype=np.float64)
            out.diff_mean = float(diff.mean())
            out.diff_quantiles = {f"p{int(q * 100):02d}": float(np.quantile(diff, q)) for q in (0.05, 0.5, 0.95)}
        out.latency_p95_s = {"stable": _p95(stable_lat), "shadow": _p95(shadow_lat)}
        out.stable_values, out.shadow_values = stable_values, shadow_values
        return out

    # -- reading --

    def _values(self, family: str, version: int) -> list[float]:
        with self._lock:
            w = self._windows.get((family, int(version)))
            return [] if w is None else [v for v in w.values if v is not None]

    def stats(self, family: str, policy: FamilyPolicy | None = None) -> FamilyStats:
        """The family's `/admin/stats` answer.

        `shadow` is the comparison with `policy.shadow` when a policy is given (all zero until the
        first mirrored request; none when the policy has no shadow), else the family's most recently
        active comparison, if any."""
        with self._lock:
            snap = {
                v: (list(w.values), list(w.latencies), list(w.oks), w.requests_total, w.errors_total)
                for (f, v), w in self._windows.items()
                if f == family
            }
            labels = {
                v: LabelStats(total=lab.total, metric=lab.metric, scores=list(lab.scores),
                              mean=float(np.mean(lab.scores)) if lab.scores else None)
                for (f, v), lab in self._labels.items()
                if f == family
            }
        versions = {}
        for version in sorted(set(snap) | set(labels)):
            values, latencies, oks, requests_total, errors_total = snap.get(version, ([], [], [], 0, 0))
            count = len(oks)
            errors = count - sum(oks)
            lat = np.asarray(latencies, dtype=np.float64)
            versions[str(version)] = VersionStats(
                version=version,
                requests_total=requests_total,
                errors_total=errors_total,
                count=count,
                errors=errors,
                error_rate=errors / count if count else 0.0,
                latency_p50_s=float(np.quantile(lat, 0.5)) if count else None,
                latency_p95_s=float(np.quantile(lat, 0.95)) if count else None,
                latencies_s=latencies,
                values=[v for v, ok in zip(values, oks) if ok and v is not None],
                labels=labels.get(version) or LabelStats(),
            )
        return FamilyStats(family=family, versions=versions, shadow=self._shadow_stats(family, policy))

    # -- baselines (format and storage: djserve.drift) --

    def set_baseline(self, family: str, values: list[float], version: int | None = None, source: str = "") -> Path:
        return self.baselines.write(family, values, version, source)

    def baseline(self, family: str) -> list[float] | None:
        doc = self.baselines.read(family)
        return None if doc is None else doc.values

    # -- drift --

    def drift(self, family: str, version: int) -> DriftResult | None:
        values = self._values(family, version)
        if len(values) < self.min_samples:
            return None
        base = self.baseline(family)
        if not base:
            return None
        from scipy.stats import ks_2samp

        res = ks_2samp(values, base)
        statistic, p_value = float(res.statistic), float(res.pvalue)
        return DriftResult(
            family=family,
            version=int(version),
            statistic=statistic,
            p_value=p_value,
            drifted=p_value < DRIFT_P_VALUE,
            samples=len(values),
            baseline_samples=len(base),
        )

    def check_drift(self, family: str, version: int) -> DriftResult | None:
        result = self.drift(family, version)
        if result is None:
            return None
        _drift_gauge().labels(model_type=family, version=str(int(version))).set(result.statistic)
        key = (family, int(version))
        with self._lock:
            was = key in self._drifting
            if result.drifted:
                self._drifting.add(key)
            else:
                self._drifting.discard(key)
        if result.drifted and not was:
            log.warning(
                "drift detected in %s v%d: KS statistic %.3f, p=%.3g (%d recent vs %d baseline)",
                family, key[1], result.statistic, result.p_value, result.samples, result.baseline_samples,
            )
        elif was and not result.drifted:
            log.info(
                "drift recovered in %s v%d: KS statistic %.3f, p=%.3g", family, key[1], result.statistic, result.p_value
            )
        return result
