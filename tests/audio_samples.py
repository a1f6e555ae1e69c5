"""Audio made in the tests: click tracks of a known tempo, encoded to every supported format."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def click_track(bpm: float, seconds: float, sr: int = 22050, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Short decaying 1 kHz clicks on every beat over quiet noise; [n] or [n, channels]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = rng.normal(0, 0.003, n).astype(np.float32)
    click = (np.sin(2 * np.pi * 1000 * np.arange(int(0.03 * sr)) / sr) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr))).astype(np.float32)
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        y[i : i + len(click)] += 0.8 * click[: max(0, min(len(click), n - i))]
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def encode(y: np.ndarray, sr: int = 22050, fmt: str = "wav") -> bytes:
    container, subtype = FORMATS[fmt]
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=container, subtype=subtype)
    return buf.getvalue()
