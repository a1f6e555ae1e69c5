"""Shadow traffic: mirror routed requests to a candidate version after the caller has its answer.

When the traffic policy gives a family a `shadow` version, `route()` marks `shadow_percent` of the
keys (`Route.shadow`). Once the stable version has answered such a request, `ModelBackend.infer`
hands it to `ShadowMirror.submit`: a `put_nowait` onto a bounded queue and nothing else on the
caller's path. Worker tasks (started lazily on the running event loop) send the same inputs to the
shadow version, with the same timeout, and record the pair in the monitor:

- output summaries (`bentos.monitoring.summarize`) of both, and their difference;
- decisions: sentiment the argmax label of every row, recommender the top item; other families have
  none and are compared by ranking (do both versions order consecutive requests the same way?);
- latencies, ok/error.

The shadow's answers are never returned, and its outcomes never enter the version's own
`VersionStats` (which the canary gates read). A full queue drops the mirror (counted); a failing
shadow is counted, logged (rate limited) and never raised.

Prometheus: `ai_shadow_requests_total{model_type,version,outcome}` (ok | error | dropped), the
gauge `ai_shadow_agreement{model_type,version}` and the histogram
`ai_shadow_score_difference{model_type,version}` (shadow minus stable summary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Union

import numpy as np

from bentos.metrics import shadow_metrics
from bentos.monitoring import PredictionMonitor, summarize

log = logging.getLogger("djserve.shadow")

Inputs = Mapping[str, np.ndarray]
ShadowCall = Callable[[str, Inputs, int], Awaitable[Mapping[str, np.ndarray]]]
"""(family, inputs, shadow version) -> outputs: a Triton call with the gateway's timeout."""

#: At most one warning per (family, shadow version) per this many seconds about shadow failures.
WARN_EVERY_S = 60.0


def decision(family: str, outputs: Mapping[str, np.ndarray]) -> Any:
    """What an answer decided, comparable between two versions; None where a family decides nothing
    discrete (scores: compared by ranking instead).

    sentiment: the argmax label of every row (a tuple); recommender: the index of the top item."""
    if family == "sentiment":
        from djserve.specs.sentiment import LABELS

        logits = np.asarray(outputs["logits"])
        logits = logits.reshape(-1, logits.shape[-1])
        return tuple(LABELS[int(i)] for i in np.argmax(logits, axis=1))
    if family == "recommender":
        return int(np.argmax(np.asarray(outputs["score"]).reshape(-1)))
    return None


@dataclass(frozen=True)
class ShadowJob:
    family: str
    inputs: Union[Inputs, Callable[[], Inputs]]
    """The stable call's inputs, or a function making the shadow's own (e.g. its own tokenizer)."""
    stable: int
    shadow: int
    stable_outputs: Mapping[str, np.ndarray]
    stable_value: float | None
    stable_latency_s: float


class ShadowMirror:
    """A bounded queue of mirrored requests and the workers that send them to the shadow version."""

    def __init__(self, call: ShadowCall, monitor: PredictionMonitor, queue_size: int = 64, concurrency: int = 1) -> None:
        if queue_size < 1 or concurrency < 1:
            raise ValueError("queue_size and concurrency must be >= 1")
        self._call = call
        self.monitor = monitor
        self.queue_size, self.concurrency = queue_size, concurrency
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task] = []
        self._warned: dict[tuple[str, int], float] = {}
        self.internal_errors = 0
        """failures of the mirror itself (not of the shadow version); logged"""

    # -- the caller's side: never blocks, never raises --

    def submit(
        self,
        family: str,
        inputs: Union[Inputs, Callable[[], Inputs]],
        stable: int,
        shadow: int,
        stable_outputs: Mapping[str, np.ndarray],
        stable_value: float | None,
        stable_latency_s: float,
    ) -> bool:
        """Queue one mirrored request; False when it was dropped (queue full) or could not be queued."""
        try:
            queue = self._ensure_started()
            queue.put_nowait(ShadowJob(family, inputs, int(stable), int(shadow), stable_outputs, stable_value, stable_latency_s))
            return True
        except asyncio.QueueFull:
            self._count(family, shadow, "dropped")
            try:
                self.monitor.shadow_dropped(family, stable, shadow)
            except Exception:  # noqa: BLE001
                self._internal_error("recording a dropped mirror")
            return False
        except Exception:  # noqa: BLE001 - the caller is never failed by the shadow
            self._internal_error("queueing a mirror")
            return False

    def _ensure_started(self) -> asyncio.Queue:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            self._loop, self._queue = loop, asyncio.Queue(maxsize=self.queue_size)
            self._workers = [loop.create_task(self._work(self._queue), name=f"shadow-{i}") for i in range(self.concurrency)]
        return self._queue

    # -- the workers --

    async def _work(self, queue: asyncio.Queue) -> None:
        while True:
            job = await queue.get()
            try:
                await self._mirror(job)
            except Exception:  # noqa: BLE001 - a worker never dies
                self._internal_error(f"mirroring {job.family} to v{job.shadow}")
            finally:
                queue.task_done()

    async def _mirror(self, job: ShadowJob) -> None:
        start = time.perf_counter()
        try:
            inputs = job.inputs() if callable(job.inputs) else job.inputs
            out = await self._call(job.family, inputs, job.shadow)
            value = summarize(job.family, out)
            shadow_decision = decision(job.family, out)
            stable_decision = decision(job.family, job.stable_outputs)
        except Exception as exc:  # noqa: BLE001 - the shadow failed: counted, never raised
            latency = time.perf_counter() - start
            self.monitor.observe_shadow(job.family, job.stable, job.shadow, ok=False,
                                        stable_latency_s=job.stable_latency_s, shadow_latency_s=latency)
            self._count(job.family, job.shadow, "error")
            self._warn(job, exc)
            return
        latency = time.perf_counter() - start
        agreement = self.monitor.observe_shadow(
            job.family, job.stable, job.shadow, ok=True,
            stable_value=job.stable_value, shadow_value=value,
            stable_decision=stable_decision, shadow_decision=shadow_decision,
            stable_latency_s=job.stable_latency_s, shadow_latency_s=latency,
        )
        self._count(job.family, job.shadow, "ok")
        _, agreement_gauge, difference = shadow_metrics()
        labels = {"model_type": job.family, "version": str(job.shadow)}
        difference.labels(**labels).observe(value - job.stable_value)
        if agreement is not None:
            agreement_gauge.labels(**labels).set(agreement)

    # -- housekeeping --

    async def drain(self) -> None:
        """Until every queued mirror has been handled (tests, shutdown)."""
        if self._queue is not None and self._loop is asyncio.get_running_loop():
            await self._queue.join()

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        if self._workers and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers, self._queue, self._loop = [], None, None

    @property
    def queued(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    def _count(self, family: str, shadow: int, outcome: str) -> None:
        try:
            shadow_metrics()[0].labels(model_type=family, version=str(shadow), outcome=outcome).inc()
        except Exception:  # noqa: BLE001
            self._internal_error("counting a mirror")

    def _warn(self, job: ShadowJob, exc: Exception) -> None:
        key, now = (job.family, job.shadow), time.monotonic()
        if now - self._warned.get(key, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[key] = now
            log.warning("shadow %s v%d failed (counted; callers unaffected): %s: %s",
                        job.family, job.shadow, type(exc).__name__, getattr(exc, "message", None) or exc)

    def _internal_error(self, what: str) -> None:
        self.internal_errors += 1
        log.exception("shadow mirror failed %s (callers unaffected)", what)
