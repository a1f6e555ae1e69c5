"""Uploads featurised in child processes: the same numbers as the thread path, a lower CPU priority,
and a child that dies, hangs or is abandoned midway replaced without touching the next set."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import psutil
import pytest
from prometheus_client import REGISTRY

from bentos import audio
from bentos.errors import GatewayError
from bentos.featurizer import FeaturizerLost, ProcessFeaturizer, ThreadFeaturizer
from tests.bentos.test_audio import chirp, encode

RATE = 44_100
NICE = 7


@pytest.fixture(scope="module")
def long_set() -> bytes:
    """50 s: two windows (1024 frames each at 22050 Hz / hop 512 is ~23.8 s) and a remainder."""
    return encode(chirp(50.0, RATE), RATE, "flac")


def _source(data: bytes) -> audio.AudioSource:
    return audio.open_audio(data, audio.AudioLimits())


async def _all(featurizer, data: bytes):
    windows = []
    async with featurizer.open(_source(data)) as stream:
        while batch := await stream.next_batch():
            windows.extend(batch)
        return windows, await stream.tempo()


def _restarts(reason: str) -> float:
    return REGISTRY.get_sample_value("ai_featurizer_restarts_total", {"reason": reason}) or 0.0


def run_with(pool_args: dict, scenario):
    """Run `scenario(pool)` in a fresh event loop with a fresh pool; the pool's children are killed after."""
    pool = ProcessFeaturizer(**{"size": 1, "nice": NICE, "timeout_s": 30.0, "retry_after_s": 4, **pool_args})

    async def main():
        try:
            return await scenario(pool)
        finally:
            pool.close()

    return asyncio.run(main())


def test_a_child_process_computes_the_windows_and_tempo_the_thread_path_computes(long_set):
    expected, expected_tempo = asyncio.run(_all(ThreadFeaturizer(), long_set))

    async def scenario(pool):
        got, tempo = await _all(pool, long_set)
        child = psutil.Process(pool.pids[0])
        nices = {os.getpriority(os.PRIO_PROCESS, t.id) for t in child.threads()}  # numpy's pool included
        return got, tempo, {n - os.getpriority(os.PRIO_PROCESS, 0) for n in nices}

    got, tempo, niceness = run_with({}, scenario)
    assert len(expected) == 3 and [w.index for w in got] == [0, 1, 2]
    # The child runs one BLAS thread, this process maybe more: the same sums in another order.
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.audio_features, b.audio_features, atol=1e-6)
        np.testing.assert_allclose(a.mixing_features, b.mixing_features, atol=1e-6)
        np.testing.assert_allclose(a.onset_envelope, b.onset_envelope, atol=1e-5)
        assert a.start_s == b.start_s
    assert tempo[0] == pytest.approx(expected_tempo[0], abs=0.01) and tempo[0] > 0
    np.testing.assert_allclose(tempo[1], expected_tempo[1], atol=0.001)
    assert niceness == {NICE}  # every thread: uploads yield the cores to chat and live beats


def test_a_file_that_breaks_midway_is_its_audio_error_and_the_child_goes_on(long_set):
    broken = long_set[: len(long_set) // 2]  # a truncated FLAC opens, then loses sync while decoding

    async def scenario(pool):
        pid = pool.pids[0] if pool.pids else None
        with pytest.raises(audio.AudioError) as info:
            await _all(pool, broken)
        first = pool.pids[0]
        windows, _ = await _all(pool, long_set)
        return info.value.code, pid, first, pool.pids[0], len(windows)

    code, _, first, after, n = run_with({}, scenario)
    assert code == "corrupt_audio"
    assert first == after and n == 3  # the same process served the next set


def test_a_set_abandoned_midway_leaves_a_child_that_serves_the_next_set(long_set):
    async def scenario(pool):
        async with pool.open(_source(long_set)) as stream:
            assert len(await stream.next_batch()) == 1  # then the caller goes away (an error, a cancel)
        first = pool.pids[0]
        windows, tempo = await _all(pool, long_set)
        return first, pool.pids[0], len(windows), tempo

    before = _restarts("unsettled")
    first, after, n, tempo = run_with({}, scenario)
    assert first == after and n == 3 and tempo[0] > 0
    assert _restarts("unsettled") == before


def test_a_child_killed_midway_is_a_503_and_a_new_child_serves_the_next_set(long_set):
    async def scenario(pool):
        async with pool.open(_source(long_set)) as stream:
            await stream.next_batch()
            killed = pool.pids[0]
            os.kill(killed, signal.SIGKILL)
            with pytest.raises(FeaturizerLost) as info:
                while await stream.next_batch():
                    pass
        windows, _ = await _all(pool, long_set)
        return info.value, killed, pool.pids[0], len(windows)

    before = _restarts("lost")
    error, killed, replacement, n = run_with({}, scenario)
    assert isinstance(error, GatewayError) and error.status == 503 and error.code == "featurizer_unavailable"
    assert error.headers == {"Retry-After": "4"}
    assert replacement != killed and n == 3
    assert _restarts("lost") == before + 1


def test_a_child_that_stops_answering_is_replaced_after_the_timeout(long_set):
    async def scenario(pool):
        async with pool.open(_source(long_set)) as stream:
            await stream.next_batch()
            frozen = pool.pids[0]
            os.kill(frozen, signal.SIGSTOP)  # alive, but silent
            with pytest.raises(FeaturizerLost) as info:
                await stream.next_batch()
        windows, _ = await _all(pool, long_set)
        return info.value.message, frozen, pool.pids[0], len(windows)

    message, frozen, replacement, n = run_with({"timeout_s": 2.0}, scenario)
    assert "did not answer within 2 s" in message
    assert replacement != frozen and n == 3
    with pytest.raises(ProcessLookupError):
        os.kill(frozen, 0)  # killed and reaped, not left stopped
