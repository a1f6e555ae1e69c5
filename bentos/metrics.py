"""The design documents' model metrics, labelled by version and status.

Created on first use, not at import: BentoML workers set PROMETHEUS_MULTIPROC_DIR after the
service module is imported, and prometheus_client must see it to write where /metrics reads.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from djserve.supervision import SupervisionRecord

LABELS = ("model_type", "genre", "version", "status", "stage")

STAGES = ("total", "preprocess", "inference", "postprocess")
"""`stage` of ai_model_prediction_latency_seconds: the whole prediction, then its parts (decode,
features and tokenisation; the Triton calls; turning outputs into the answer). A part's time is
the wall time during which at least one of its blocks ran, so concurrent Triton calls of one
request (the judge's three models) count once and the parts of a pipelined request may overlap."""


@functools.cache
def _metrics():
    import prometheus_client as prom

    latency = prom.Histogram(
        "ai_model_prediction_latency_seconds",
        "Time spent on a model prediction: stage=total, or one of its stages (preprocess, inference, postprocess)",
        LABELS,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    )
    count = prom.Counter("ai_model_predictions_total", "Predictions by outcome", LABELS[:-1])
    return latency, count


class StageTimes:
    """Busy wall time per stage of one prediction (thread-safe: featurisation runs in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._since: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def enter(self, name: str) -> None:
        with self._lock:
            if not self._active.get(name):
                self._since[name] = time.perf_counter()
            self._active[name] = self._active.get(name, 0) + 1

    def leave(self, name: str) -> None:
        with self._lock:
            self._active[name] -= 1
            if not self._active[name]:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._since.pop(name)


_CURRENT: contextvars.ContextVar[StageTimes | None] = contextvars.ContextVar("djserve_stage_times", default=None)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a block as one stage of the prediction `track` is timing (nothing outside one). Tasks
    and `asyncio.to_thread` inherit the context; a bare executor does not: time its await."""
    times = _CURRENT.get()
    if times is None:
        yield
        return
    times.enter(name)
    try:
        yield
    finally:
        times.leave(name)


@contextmanager
def track(model_type: str, version: int | str | None, genre: str = "none") -> Iterator[dict]:
    """Time a prediction and its stages; the status label is "success" unless the block raises.

    The yielded dict may update "version" once routing has chosen it."""
    labels = {"model_type": model_type, "genre": genre or "none", "version": str(version or "none")}
    times = StageTimes()
    token = _CURRENT.set(times)
    start = time.perf_counter()
    status = "error"
    try:
        yield labels
        status = "success"
    finally:
        total = time.perf_counter() - start
        _CURRENT.reset(token)
        latency, count = _metrics()
        values = {**labels, "version": str(labels["version"]), "status": status}
        count.labels(**values).inc()
        latency.labels(**values, stage="total").observe(total)
        for name, seconds in times.seconds.items():
            latency.labels(**values, stage=name).observe(seconds)


@functools.cache
def shadow_metrics():
    """(ai_shadow_requests_total{model_type,version,outcome}, ai_shadow_agreement{model_type,version},
    ai_shadow_score_difference{model_type,version}).

    outcome: ok (the shadow answered), error (it failed), dropped (the mirror queue was full); the
    difference is the shadow's output summary minus the stable's on the same request."""
    import prometheus_client as prom

    requests = prom.Counter(
        "ai_shadow_requests_total", "Requests mirrored to a shadow version, by outcome", ("model_type", "version", "outcome")
    )
    agreement = prom.Gauge(
        "ai_shadow_agreement",
        "Share of recent mirrored requests where the shadow's decision agrees with the stable version's",
        ("model_type", "version"),
        multiprocess_mode="livemin",
    )
    difference = prom.Histogram(
        "ai_shadow_score_difference",
        "Shadow minus stable output summary on the same request",
        ("model_type", "version"),
        buckets=(-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
    )
    return requests, agreement, difference


@functools.cache
def row_cache_rows():
    """ai_gateway_row_cache_total{model,outcome}: request rows the gateway's row cache answered
    (outcome hit) or sent on to Triton (miss), bentos.row_cache."""
    import prometheus_client as prom

    return prom.Counter("ai_gateway_row_cache_total", "Request rows answered by the gateway's row cache, by outcome",
                        ("model", "outcome"))


@functools.cache
def prediction_log_errors():
    """ai_prediction_log_errors_total{log}: records the prediction/feedback log failed to write."""
    import prometheus_client as prom

    return prom.Counter("ai_prediction_log_errors_total", "Prediction or feedback records that could not be logged", ("log",))


@functools.cache
def triton_retries():
    """ai_triton_retries_total{outcome}: inference calls that a Triton replica refused UNAVAILABLE and
    that were sent once more to another replica (outcome ok: the retry answered; error: it failed too)."""
    import prometheus_client as prom

    return prom.Counter("ai_triton_retries_total", "Inference calls retried on another Triton replica", ("outcome",))


@functools.cache
def child_restarts():
    """djserve_child_restarts{child}: restarts of a stack child (triton-0, gateway-0, ...) by the
    supervisor of `djserve serve`, read from its record (djserve.supervision)."""
    import prometheus_client as prom

    return prom.Gauge("djserve_child_restarts", "Restarts of a stack child by its supervisor", ("child",),
                      multiprocess_mode="max")


class RestartsExport:
    """Copies the supervisor's record to `djserve_child_restarts` when the file has changed."""

    def __init__(self, path: Path):
        self.path, self._seen = path, None

    def refresh(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except OSError:
            return  # no supervisor (Kubernetes counts container restarts itself)
        if stamp == self._seen:
            return
        self._seen = stamp
        for child, record in SupervisionRecord.read(self.path).children.items():
            child_restarts().labels(child=child).set(record.restarts)
