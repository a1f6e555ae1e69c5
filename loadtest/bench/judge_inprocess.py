"""The judge endpoint's own parts, measured in-process at batch 1: what end-to-end is compared to.

decode (bytes -> 22050 Hz mono), features (windows: log-mels and mixing features, then tempo and
beats), and each window through judge, technical and creative with ONNX Runtime, one at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from bentos import audio
from djserve.specs import EXPORTED
from loadtest.bench.limit import session, time_runs

MODELS = ("judge", "technical", "creative")


class JudgeParts(BaseModel):
    clip_seconds: float
    windows: int
    decode_ms: float
    features_ms: float
    models_ms: float
    sum_ms: float


def judge_parts(clip: bytes, model_files: dict[str, Path], seconds: float) -> JudgeParts:
    limits = audio.AudioLimits()
    threads = os.cpu_count() or 1
    sessions = {m: session(model_files[m], threads) for m in MODELS}

    def decode() -> None:
        for _ in audio.open_audio(clip, limits).blocks():
            pass

    def features() -> list[audio.Window]:
        windows = list(audio.open_audio(clip, limits).windows())  # decodes too
        audio.tempo_and_beats(np.concatenate([w.onset_envelope for w in windows]))
        return windows

    windows = features()
    tokens = audio.metadata_tokens([])[None, :]

    def feed(w: audio.Window) -> dict[str, dict[str, np.ndarray]]:
        arrays = {"audio_features": w.audio_features[None], "mixing_features": w.mixing_features[None], "metadata_tokens": tokens}
        return {m: EXPORTED[m].feed(arrays) for m in MODELS}

    feeds = [feed(w) for w in windows]

    def models() -> None:
        for f in feeds:
            for m in MODELS:
                sessions[m].run(None, f[m])

    decode_s = time_runs(decode, seconds)
    with_decode_s = time_runs(features, seconds)
    models_s = time_runs(models, seconds)
    features_s = max(with_decode_s - decode_s, 0.0)
    return JudgeParts(
        clip_seconds=round(audio.open_audio(clip, limits).duration_s, 3),
        windows=len(windows),
        decode_ms=round(decode_s * 1000, 2),
        features_ms=round(features_s * 1000, 2),
        models_ms=round(models_s * 1000, 2),
        sum_ms=round((decode_s + features_s + models_s) * 1000, 2),
    )
