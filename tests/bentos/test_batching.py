"""Micro-batching in the gateway (bentos.batching): joined calls, own rows back, isolated failures."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bentos.batching import RowBatcher, signature


class Model:
    """A fake model call: doubles `x`, takes `delay` seconds, fails a call that holds a negative row."""

    def __init__(self, delay: float = 0.01):
        self.delay, self.calls = delay, []

    async def __call__(self, key, inputs):
        self.calls.append((key, inputs["x"].shape[0]))
        await asyncio.sleep(self.delay)
        if (inputs["x"] < 0).any():
            raise ValueError("the model failed on a negative row")
        return {"y": inputs["x"] * 2, "first": inputs["x"][:, :1]}


def rows(*values):
    return {"x": np.array([[v, v] for v in values], dtype=np.float32)}


def test_calls_arriving_while_one_is_in_flight_join_the_next_and_get_their_own_rows():
    async def main():
        model = Model()
        b = RowBatcher(model, max_rows=lambda key: 64, max_in_flight=1)
        answers = await asyncio.gather(*(b.submit("m", rows(i, i + 0.5)) for i in range(9)))
        for i, out in enumerate(answers):
            assert out["y"].tolist() == [[2 * i, 2 * i], [2 * i + 1, 2 * i + 1]] and out["first"].shape == (2, 1)
        return [n for _, n in model.calls]

    # the first caller finds the lane free and goes alone; the 8 that came meanwhile go as one call
    assert asyncio.run(main()) == [2, 16]


def test_light_load_waits_for_nothing():
    async def main():
        model = Model()
        b = RowBatcher(model, max_rows=lambda key: 64)
        for i in range(3):
            await b.submit("m", rows(i))
        return [n for _, n in model.calls]

    assert asyncio.run(main()) == [1, 1, 1]


def test_a_joined_call_never_exceeds_the_row_limit_and_keys_never_mix():
    async def main():
        model = Model()
        b = RowBatcher(model, max_rows=lambda key: 3, max_in_flight=1)
        calls = [b.submit("a", rows(i)) for i in range(7)] + [b.submit("b", rows(10, 11))]
        outs = await asyncio.gather(*calls)
        assert [o["y"][0, 0] for o in outs] == [0, 2, 4, 6, 8, 10, 12, 20]
        return sorted(model.calls)

    assert asyncio.run(main()) == [("a", 1), ("a", 3), ("a", 3), ("b", 2)]


def test_a_bad_input_fails_only_its_own_caller_when_isolated():
    async def main(isolate):
        model = Model()
        b = RowBatcher(model, max_rows=lambda key: 64, max_in_flight=1, isolate=isolate)
        first = asyncio.ensure_future(b.submit("m", rows(0)))
        await asyncio.sleep(0)
        rest = [b.submit("m", rows(v)) for v in (1, -1, 2)]  # joined behind the first
        return await asyncio.gather(first, *rest, return_exceptions=True)

    isolated = asyncio.run(main(lambda exc: isinstance(exc, ValueError)))
    assert [r if isinstance(r, Exception) else r["y"][0, 0] for r in isolated][:2] == [0, 2]
    assert isinstance(isolated[2], ValueError) and isolated[3]["y"][0, 0] == 4
    shared = asyncio.run(main(lambda exc: False))  # e.g. Triton down: every caller of the call gets it
    assert shared[0]["y"][0, 0] == 0 and all(isinstance(r, ValueError) for r in shared[1:])


def test_a_caller_that_went_away_is_skipped():
    async def main():
        model = Model()
        b = RowBatcher(model, max_rows=lambda key: 64, max_in_flight=1)
        first = asyncio.ensure_future(b.submit("m", rows(0)))
        await asyncio.sleep(0)
        gone = asyncio.ensure_future(b.submit("m", rows(5)))
        stays = asyncio.ensure_future(b.submit("m", rows(7)))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, stays, gone, return_exceptions=True)
        assert stays.result()["y"][0, 0] == 14 and not b._lanes
        return [n for _, n in model.calls]

    assert asyncio.run(main()) == [1, 1]


def test_calls_are_joined_only_with_the_same_shapes_and_dtypes():
    a = {"ids": np.zeros((2, 16), np.int64), "mask": np.zeros((2, 16), np.int64)}
    assert signature(a) == signature({"mask": np.ones((5, 16), np.int64), "ids": np.ones((5, 16), np.int64)})
    assert signature(a) != signature({"ids": np.zeros((2, 32), np.int64), "mask": np.zeros((2, 32), np.int64)})
    assert signature(a) != signature({"ids": np.zeros((2, 16), np.int32), "mask": np.zeros((2, 16), np.int64)})
    with pytest.raises(ValueError, match="disagree"):
        asyncio.run(RowBatcher(Model(), max_rows=lambda key: 8).submit("m", {"x": np.zeros((2, 1)), "z": np.zeros((3, 1))}))
