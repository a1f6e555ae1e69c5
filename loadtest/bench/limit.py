"""The hardware's limit: the model run in-process with ONNX Runtime, no server, at its best batch.

Same session options as the Triton config (graph optimisation on, the config's thread counts), on
the same cores, with nothing else running. Throughput is in rows per second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from loadtest.bench.workloads import Workload


class LimitPoint(BaseModel):
    batch: int
    rows_per_s: float
    ms_per_batch: float


class ModelLimit(BaseModel):
    model: str
    threads: int
    best_batch: int
    rows_per_s: float
    batch1_ms: float
    """Latency of a batch of one row."""
    points: list[LimitPoint]


def session(model_file: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])


def time_runs(run, seconds: float, min_runs: int = 3) -> float:
    """Median seconds per call of `run()` over about `seconds` (one warm-up call first)."""
    run()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def batch_sizes(w: Workload) -> list[int]:
    """Powers of two up to the model's max batch, plus the workload's own request size."""
    sizes = {w.rows}
    b = 1
    while b <= w.max_batch:
        sizes.add(b)
        b *= 2
    return sorted(sizes)


def measure_limit(w: Workload, model_file: Path, seconds_per_batch: float, seed: int = 0) -> ModelLimit:
    """Best rows/s of one session using every core (intra-op threads = cores), over batch sizes."""
    threads = os.cpu_count() or 1
    sess = session(model_file, threads)
    rng = np.random.default_rng(seed)
    points = []
    for rows in batch_sizes(w):
        feeds = w.request(rng, rows)
        per_call = time_runs(lambda: sess.run(None, feeds), seconds_per_batch)
        points.append(LimitPoint(batch=rows, rows_per_s=round(rows / per_call, 2), ms_per_batch=round(per_call * 1000, 3)))
    best = max(points, key=lambda p: p.rows_per_s)
    return ModelLimit(
        model=w.model, threads=threads, best_batch=best.batch, rows_per_s=best.rows_per_s,
        batch1_ms=points[0].ms_per_batch, points=points,
    )
