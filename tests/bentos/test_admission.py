"""Admission control of heavy requests (bentos.admission): capacity, an ordered queue, refusals."""

from __future__ import annotations

import asyncio

import pytest

from bentos.admission import Admission, Overloaded


def run(coro):
    return asyncio.run(coro)


async def hold(admission: Admission, name: str, units: int, gate: asyncio.Event, log: list[str]) -> None:
    async with admission.slot(units):
        log.append(f"start {name}")
        await gate.wait()
    log.append(f"end {name}")


def test_capacity_then_queue_then_refusal():
    async def main():
        a = Admission("judge", capacity=2, max_queued=1, retry_after_s=7)
        gate, log = asyncio.Event(), []
        running = [asyncio.create_task(hold(a, n, 1, gate, log)) for n in ("a", "b")]
        waiting = asyncio.create_task(hold(a, "c", 1, gate, log))
        await asyncio.sleep(0)
        assert (a.running, a.queued, log) == (2, 1, ["start a", "start b"])
        with pytest.raises(Overloaded) as refused:
            async with a.slot():
                pass
        assert refused.value.status == 429 and refused.value.code == "overloaded"
        assert refused.value.headers == {"Retry-After": "7"} and "2 analyses running, 1 queued" in refused.value.message
        gate.set()
        await asyncio.gather(*running, waiting)
        assert (a.running, a.queued) == (0, 0) and "start c" in log

    run(main())


def test_waiters_are_served_in_order_and_a_big_one_is_not_overtaken():
    async def main():
        a = Admission("judge", capacity=2, max_queued=4, retry_after_s=1)
        gates = {n: asyncio.Event() for n in "abcd"}
        log: list[str] = []
        first = asyncio.create_task(hold(a, "a", 1, gates["a"], log))
        await asyncio.sleep(0)
        battle = asyncio.create_task(hold(a, "b", 2, gates["b"], log))  # needs both units: waits for a
        await asyncio.sleep(0)
        small = asyncio.create_task(hold(a, "c", 1, gates["c"], log))  # one unit is free, but b is first in line
        await asyncio.sleep(0)
        assert log == ["start a"] and a.queued == 2
        gates["a"].set()
        await asyncio.sleep(0.01)
        assert log == ["start a", "end a", "start b"] and a.running == 2
        gates["b"].set()
        gates["c"].set()
        await asyncio.gather(first, battle, small)
        assert log[-2:] == ["start c", "end c"] and a.running == 0

    run(main())


def test_a_caller_that_goes_away_gives_its_place_back():
    async def main():
        a = Admission("judge", capacity=1, max_queued=1, retry_after_s=1)
        gate, log = asyncio.Event(), []
        busy = asyncio.create_task(hold(a, "a", 1, gate, log))
        await asyncio.sleep(0)
        gone = asyncio.create_task(hold(a, "b", 1, gate, log))
        await asyncio.sleep(0)
        assert a.queued == 1
        gone.cancel()  # a client disconnecting while queued
        await asyncio.sleep(0)
        assert a.queued == 0
        late = asyncio.create_task(hold(a, "c", 1, gate, log))  # the queue has room again
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(busy, late)
        assert log == ["start a", "end a", "start c", "end c"] and (a.running, a.queued) == (0, 0)

    run(main())


def test_a_caller_cancelled_just_as_its_turn_came_hands_the_units_on():
    async def main():
        a = Admission("judge", capacity=1, max_queued=2, retry_after_s=1)
        gate, log = asyncio.Event(), []
        await a._acquire(1)  # the unit is taken
        unlucky = asyncio.create_task(hold(a, "b", 1, gate, log))
        after = asyncio.create_task(hold(a, "c", 1, gate, log))
        await asyncio.sleep(0)
        assert a.queued == 2
        a._release(1)  # b's turn comes ...
        unlucky.cancel()  # ... and b is cancelled before it could run: c must get the unit
        gate.set()
        await asyncio.gather(unlucky, after, return_exceptions=True)
        assert unlucky.cancelled() and log == ["start c", "end c"] and (a.running, a.queued) == (0, 0)

    run(main())
