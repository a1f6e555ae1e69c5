"""Admission control for heavy requests: a bounded number run, a bounded queue waits, the rest are refused.

Judging an uploaded set decodes audio and computes librosa features on the gateway's cores, seconds of
CPU per set. Unbounded, a burst of uploads takes the cores from chat and live beats, whose p95 budget
is 100 ms. So each heavy route holds capacity units while it runs (a battle holds two: it scores two
sets at once); waiters are served in arrival order, and when the queue is full the request is
answered at once with 429 `overloaded` and Retry-After instead of joining an ever longer wait.
Refusals are counted on /metrics (`ai_admission_refused_total`), apart from failures.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bentos.errors import GatewayError


class Overloaded(GatewayError):
    """The route's analyses and queue are full: try again after Retry-After seconds."""

    status = 429

    def __init__(self, route: str, running: int, queued: int, retry_after_s: int):
        super().__init__(
            "overloaded",
            f"{route} is at capacity ({running} analyses running, {queued} queued); retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


@functools.cache
def _metrics():
    import prometheus_client as prom

    refused = prom.Counter("ai_admission_refused_total", "Heavy requests refused (429) because the route was at capacity",
                           ("route",))
    running = prom.Gauge("ai_admission_running", "Capacity units in use by running heavy requests", ("route",),
                         multiprocess_mode="livesum")
    queued = prom.Gauge("ai_admission_queued", "Heavy requests waiting for capacity", ("route",), multiprocess_mode="livesum")
    return refused, running, queued


class Admission:
    """`capacity` units shared by the requests of one route (or a group of routes), `max_queued` waiters."""

    def __init__(self, route: str, capacity: int, max_queued: int, retry_after_s: int):
        if capacity < 1 or max_queued < 0:
            raise ValueError(f"capacity must be >= 1 and max_queued >= 0, got {capacity}, {max_queued}")
        self.route, self.capacity, self.max_queued, self.retry_after_s = route, capacity, max_queued, retry_after_s
        self._free = capacity
        self._waiters: deque[tuple[int, asyncio.Future]] = deque()

    @property
    def running(self) -> int:
        return self.capacity - self._free

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self, units: int = 1) -> AsyncIterator[None]:
        """Hold `units` of capacity (at most all of it) while the block runs; wait in line for them, or
        raise `Overloaded` at once when the line is full."""
        units = min(max(units, 1), self.capacity)
        await self._acquire(units)
        try:
            yield
        finally:
            self._release(units)

    async def _acquire(self, units: int) -> None:
        refused, running, queued = _metrics()
        if self._free >= units and not self._waiters:  # first come, first served: never overtake a waiter
            self._free -= units
            running.labels(route=self.route).inc(units)
            return
        if len(self._waiters) >= self.max_queued:
            refused.labels(route=self.route).inc()
            raise Overloaded(self.route, self.running, self.queued, self.retry_after_s)
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append((units, turn))
        queued.labels(route=self.route).inc()
        try:
            await turn
        except asyncio.CancelledError:  # the caller went away while waiting
            if turn.done() and not turn.cancelled():  # ... just after its turn came: hand the units back
                self._release(units)
            else:
                self._waiters.remove((units, turn))
            raise
        finally:
            queued.labels(route=self.route).dec()

    def _release(self, units: int) -> None:
        _, running, _ = _metrics()
        running.labels(route=self.route).dec(units)
        self._free += units
        while self._waiters and self._waiters[0][0] <= self._free:
            need, turn = self._waiters.popleft()
            self._free -= need
            running.labels(route=self.route).inc(need)
            turn.set_result(None)
