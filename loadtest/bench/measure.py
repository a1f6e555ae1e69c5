"""Closed-loop load: N workers each send one request, wait for its answer, send the next.

Latency percentiles and throughput of one load point. The same generator drives Triton, the
gateway and the naive baseline, so their figures differ only by what serves them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import numpy as np
from pydantic import BaseModel

Call = Callable[[int], Awaitable[object]]
"""One request; the argument is a running request number (pick a payload, a key)."""


class LoadPoint(BaseModel):
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float
    """Successful requests per second."""
    items_per_s: float
    """Model rows per second (requests x rows per request)."""
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    first_error: str | None = None


def summarize(latencies_s: list[float], errors: int, seconds: float, concurrency: int, items: int = 1,
              first_error: str | None = None) -> LoadPoint:
    lat = np.asarray(latencies_s, dtype=np.float64) * 1000 if latencies_s else np.zeros(1)
    ok = len(latencies_s)
    return LoadPoint(
        concurrency=concurrency,
        requests=ok + errors,
        errors=errors,
        seconds=round(seconds, 3),
        throughput=round(ok / seconds, 2) if seconds > 0 else 0.0,
        items_per_s=round(ok * items / seconds, 2) if seconds > 0 else 0.0,
        p50_ms=round(float(np.percentile(lat, 50)), 3),
        p95_ms=round(float(np.percentile(lat, 95)), 3),
        p99_ms=round(float(np.percentile(lat, 99)), 3),
        mean_ms=round(float(lat.mean()), 3),
        first_error=first_error,
    )


async def closed_loop(call: Call, concurrency: int, seconds: float, warmup_s: float = 0.5, items: int = 1,
                      timeout_s: float = 60.0, min_requests: int = 1) -> LoadPoint:
    """Run `concurrency` workers for `warmup_s` (not counted) and then `seconds` (counted), and on
    until at least `min_requests` were counted (slow requests in short runs)."""
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    counter = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds

    async def worker() -> None:
        nonlocal errors, first_error, counter
        while (now := time.perf_counter()) < stop_at or (now >= measure_from and len(latencies) + errors < min_requests):
            counter += 1
            t0 = now
            try:
                await asyncio.wait_for(call(counter), timeout_s)
            except Exception as exc:  # noqa: BLE001 - every failure counts as an error of this point
                if t0 >= measure_from:
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
                continue
            if t0 >= measure_from:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = max(time.perf_counter() - measure_from, 1e-9)
    return summarize(latencies, errors, elapsed, concurrency, items, first_error)


async def paced_streams(call: Call, streams: int, seconds: float, period_s: float = 1.0, timeout_s: float = 10.0,
                        warmup_chunks: int = 1) -> LoadPoint:
    """`streams` live streams, each sending one chunk every `period_s` (real time), for `seconds`.
    The first `warmup_chunks` of each stream are not counted (connection set-up)."""
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    start = time.perf_counter()

    async def stream(k: int) -> None:
        nonlocal errors, first_error
        await asyncio.sleep(period_s * k / streams)  # streams start spread over one period
        n = 0
        while time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(call(k), timeout_s)
                if n >= warmup_chunks:
                    latencies.append(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"[:300]
            n += 1
            await asyncio.sleep(max(0.0, start + period_s * k / streams + n * period_s - time.perf_counter()))

    await asyncio.gather(*(stream(k) for k in range(streams)))
    return summarize(latencies, errors, max(time.perf_counter() - start - warmup_chunks * period_s, 1e-9), streams, 1, first_error)
