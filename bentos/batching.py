"""Micro-batching in the gateway: concurrent calls for the same model join one call.

The small models cost less to compute than a call costs to make (gRPC, Triton's scheduling, the
ONNX Runtime backend's own Python): ~0.5-1 ms of CPU per call whatever its size. So calls that
arrive while earlier ones are in flight wait for a lane, and whatever has gathered by then goes as
ONE call: the callers' inputs are concatenated along their first axis (rows) and the outputs are
split back, so each caller gets its own rows. Under light load nothing waits: a call is sent at
once when its lane is free, so batching costs no latency at concurrency 1.

Kept apart from the endpoint code (as Ray Serve's `@serve.batch` is): the business code calls
`submit(key, inputs)` with its own inputs and gets its own outputs; only calls with the same key
(model, version, the inputs' shapes past the first axis and dtypes) are joined. When a joined call
fails with an error `isolate` accepts (the model failed on some input), each caller is retried
alone, so one bad input fails its own request only.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Hashable, Mapping

import numpy as np

Arrays = Mapping[str, np.ndarray]


@functools.cache
def _metrics():
    import prometheus_client as prom

    callers = prom.Histogram(
        "ai_gateway_batch_callers", "Requests joined into one Triton call by the gateway's micro-batching", ("model",),
        buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
    )
    return callers


def signature(inputs: Arrays) -> tuple:
    """What must match for two calls to be joined: every input's name, dtype and shape past the rows."""
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items()))


@dataclass
class _Pending:
    inputs: Arrays
    rows: int
    answer: asyncio.Future


@dataclass
class _Lane:
    pending: deque[_Pending] = field(default_factory=deque)
    in_flight: int = 0


class RowBatcher:
    """Joins concurrent `submit`s of one key into calls of `call(key, inputs)`, each at most
    `max_rows(key)` rows (a single caller above it is sent alone), at most `max_in_flight` calls per
    key at a time."""

    def __init__(
        self,
        call: Callable[[Hashable, Arrays], Awaitable[dict[str, np.ndarray]]],
        max_rows: Callable[[Hashable], int],
        max_in_flight: int = 2,
        isolate: Callable[[BaseException], bool] = lambda exc: False,
        metric_name: Callable[[Hashable], str] = str,
    ):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._call, self._max_rows, self.max_in_flight = call, max_rows, max_in_flight
        self._isolate, self._metric_name = isolate, metric_name
        self._lanes: dict[Hashable, _Lane] = {}
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, key: Hashable, inputs: Arrays) -> dict[str, np.ndarray]:
        rows = _rows(inputs)
        answer = asyncio.get_running_loop().create_future()
        lane = self._lanes.setdefault(key, _Lane())
        lane.pending.append(_Pending(inputs, rows, answer))
        self._pump(key, lane)
        return await answer

    def _pump(self, key: Hashable, lane: _Lane) -> None:
        while lane.in_flight < self.max_in_flight and lane.pending:
            batch = self._take(key, lane)
            if not batch:
                continue
            lane.in_flight += 1
            task = asyncio.ensure_future(self._run(key, lane, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not lane.pending and not lane.in_flight and self._lanes.get(key) is lane:
            del self._lanes[key]  # shapes vary (live chunks): keep no idle lanes

    def _take(self, key: Hashable, lane: _Lane) -> list[_Pending]:
        """The next call's callers, in arrival order, up to the row limit (callers gone are skipped)."""
        limit, batch, rows = self._max_rows(key), [], 0
        while lane.pending:
            nxt = lane.pending[0]
            if nxt.answer.done():  # cancelled while waiting
                lane.pending.popleft()
                continue
            if batch and rows + nxt.rows > limit:
                break
            batch.append(lane.pending.popleft())
            rows += nxt.rows
        return batch

    async def _run(self, key: Hashable, lane: _Lane, batch: list[_Pending]) -> None:
        try:
            _metrics().labels(model=self._metric_name(key)).observe(len(batch))
            await self._send(key, batch)
        finally:
            lane.in_flight -= 1
            self._pump(key, lane)

    async def _send(self, key: Hashable, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            inputs = batch[0].inputs
        else:
            inputs = {name: np.concatenate([p.inputs[name] for p in batch]) for name in batch[0].inputs}
        try:
            out = await self._call(key, inputs)
        except Exception as exc:  # noqa: BLE001 - handed to the callers
            if len(batch) > 1 and self._isolate(exc):
                await asyncio.gather(*(self._send(key, [p]) for p in batch))
                return
            for p in batch:
                _settle(p.answer, exception=exc)
            return
        start = 0
        for p in batch:
            _settle(p.answer, {name: a[start : start + p.rows] for name, a in out.items()} if len(batch) > 1 else out)
            start += p.rows


def _rows(inputs: Arrays) -> int:
    sizes = {a.shape[0] for a in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on their number of rows: {sorted(sizes)}")
    return sizes.pop()


def _settle(answer: asyncio.Future, result=None, exception: BaseException | None = None) -> None:
    if answer.done():  # the caller went away
        return
    if exception is not None:
        answer.set_exception(exception)
    else:
        answer.set_result(result)
