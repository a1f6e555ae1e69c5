"""Live analysis: one chunk (about a second) of a DJ's stream -> beats, in well under real time.

The beat tracker gives a per-frame beat activation and a chunk-level beat probability;
`djserve.beats.decode` turns the activation into beat times (seconds from the chunk's start), a
tempo and a tempo confidence, in a few milliseconds.

Stateless per chunk, so any gateway replica can take the next chunk of a stream; the stream id is
the routing key, so all chunks of one stream go to the same model version during a canary.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bentos import audio
from bentos.backend import ModelBackend
from bentos.judge import as_gateway_error, open_set
from bentos.metrics import stage, track
from djserve import beats
from djserve.schemas import LiveBeats
from djserve.specs import beat_tracker

SPEC = beat_tracker.SPEC

#: Chunks up to this long are analysed on the event loop (~4 ms of CPU for a second: features and
#: beat decoding). Handed to a thread, each step waited for the interpreter lock behind the loop and
#: the other threads: live p95 100 -> 77 ms at 32 users. Longer chunks (up to the 10 s limit) would
#: hold the loop too long and still go to a thread pool of their own (a bulkhead: not queued behind
#: anything else).
INLINE_SECONDS = 2.0
_LIVE_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="live-features")


async def _inline(fn, *args):
    return fn(*args)


async def _in_pool(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_LIVE_POOL, fn, *args)


def _beat_mel(source: audio.AudioSource) -> np.ndarray:
    """[1, T, 84]: the chunk is short (limits), so all its windows fit in memory."""
    return source.beat_mel()[np.newaxis]


async def analyze_chunk(
    backend: ModelBackend, data: bytes, declared_format: str | None, stream_id: str, limits: audio.AudioLimits,
    pinned: int | None = None,
) -> LiveBeats:
    start = time.perf_counter()
    source = open_set(data, limits, declared_format)
    r = backend.route(SPEC.name, stream_id, pinned)
    run = _inline if source.duration_s <= INLINE_SECONDS else _in_pool
    with track(SPEC.name, r.version):
        try:
            with stage("preprocess"):
                mel = await run(_beat_mel, source)
        except audio.AudioError as exc:  # found while decoding (a stream shorter than its header said)
            raise as_gateway_error(exc) from None
        out = await backend.infer(SPEC.name, {"mel_frames": mel}, r)
        with stage("postprocess"):
            found = await run(beats.decode, out["beat_activation"][0])
    return LiveBeats(
        stream_id=stream_id,
        beat_probability=round(float(out["beat_probability"][0, 0]), 6),
        beats=[round(float(t), 4) for t in found.times],
        bpm=None if found.bpm is None else round(found.bpm, 2),
        tempo_confidence=round(found.confidence, 6),
        frames=int(mel.shape[1]),
        duration_seconds=round(source.decoded_seconds or source.duration_s, 3),
        model_version=r.version,
        processing_time_ms=round((time.perf_counter() - start) * 1000, 1),
    )
