"""Live-traffic monitoring per model family and routed version: recent outcomes and drift.

Each request is observed as (family, version, value, latency, ok), where `value` is the scalar the
prediction is summarised by (`summarize`). The last WINDOW requests per (family, version) feed

- `stats`: counts, error rate, latency quantiles and recent values (what a canary gate compares
  against the stable version);
- `drift`: the design documents' drift check (S0:1130-1150, S0:1204-1209): the window's values
  against a stored baseline, two-sample Kolmogorov-Smirnov test, p < 0.05 = drift. The KS statistic
  is exported as the gauge `ai_model_drift_score{model_type, version}`.

Baselines live in `<baseline_dir>/<family>.json`, written atomically, and are re-read when the
file changes (mtime_ns, size), so the promotion CLI can set one while the gateway is running.

prometheus_client is imported on first use only (see bentos/metrics.py): BentoML sets
PROMETHEUS_MULTIPROC_DIR after the service module is imported.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from djserve.files import atomic_write_text

WINDOW = 1000
DRIFT_P_VALUE = 0.05
CHECK_EVERY = 50

log = logging.getLogger("djserve.drift")

_FAMILY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    __slots__ = ("values", "latencies", "oks", "since_check")

    def __init__(self, size: int) -> None:
        self.values: deque[float | None] = deque(maxlen=size)
        self.latencies: deque[float] = deque(maxlen=size)
        self.oks: deque[bool] = deque(maxlen=size)
        self.since_check = 0


class PredictionMonitor:
    """Rolling per-(family, version) windows of live outcomes, baselines and drift checks.

    Thread-safe; `observe` is O(1) except every `check_every`-th successful observation of a
    (family, version), which runs a KS test over at most `window` values.
    """

    def __init__(
        self, baseline_dir: Path, window: int = WINDOW, min_samples: int = 100, check_every: int = CHECK_EVERY
    ) -> None:
        if window < 1 or min_samples < 1 or check_every < 1:
            raise ValueError("window, min_samples and check_every must be >= 1")
        self.baseline_dir = Path(baseline_dir)
        self.window = window
        self.min_samples = min_samples
        self.check_every = check_every
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], _Window] = {}
        self._drifting: set[tuple[str, int]] = set()
        self._baselines: dict[str, tuple[tuple[int, int], list[float]]] = {}

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

    def _values(self, family: str, version: int) -> list[float]:
        with self._lock:
            w = self._windows.get((family, int(version)))
            return [] if w is None else [v for v in w.values if v is not None]

    def stats(self, family: str) -> dict:
        with self._lock:
            snap = {
                v: (list(w.values), list(w.latencies), list(w.oks))
                for (f, v), w in self._windows.items()
                if f == family
            }
        versions = {}
        for version in sorted(snap):
            values, latencies, oks = snap[version]
            count = len(oks)
            errors = count - sum(oks)
            lat = np.asarray(latencies, dtype=np.float64)
            versions[str(version)] = {
                "count": count,
                "errors": errors,
                "error_rate": errors / count if count else 0.0,
                "latency_p50_s": float(np.quantile(lat, 0.5)) if count else None,
                "latency_p95_s": float(np.quantile(lat, 0.95)) if count else None,
                "values": [v for v, ok in zip(values, oks) if ok and v is not None],
                "latencies": latencies,
            }
        return {"family": family, "versions": versions}

    # -- baselines --

    def _baseline_path(self, family: str) -> Path:
        if not _FAMILY_NAME.match(family):
            raise ValueError(f"invalid model family name {family!r}")
        return self.baseline_dir / f"{family}.json"

    def set_baseline(self, family: str, values: list[float], version: int | None = None, source: str = "") -> Path:
        vals = [float(v) for v in values]
        if not vals or not all(math.isfinite(v) for v in vals):
            raise ValueError("a baseline needs at least one value, all finite")
        path = self._baseline_path(family)
        doc = {
            "family": family,
            "version": version,
            "values": vals,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
        }
        return atomic_write_text(path, json.dumps(doc))

    def baseline(self, family: str) -> list[float] | None:
        path = self._baseline_path(family)
        try:
            st = path.stat()
        except FileNotFoundError:
            with self._lock:
                self._baselines.pop(family, None)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._baselines.get(family)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            values = [float(v) for v in doc["values"]]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as e:
            log.warning("unreadable drift baseline %s: %s", path, e)
            return None
        with self._lock:
            self._baselines[family] = (stamp, values)
        return values

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
