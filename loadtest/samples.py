"""Synthetic request material for load tests and the benchmark: no datasets are downloaded.

Click tracks of a known tempo (so beat tracking has a right answer), encoded to every format the
gateway takes; multilingual chat lines; the platform's known user ids.
"""

from __future__ import annotations

import io
import json
from functools import lru_cache

import numpy as np
import soundfile as sf

from djserve.settings import PROJECT_ROOT

FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}

CHAT_LINES = (
    "this drop is insane!!!",
    "que buena mezcla, fuego total",
    "boring set, nothing happens",
    "la transition était propre",
    "der Beat ist einfach krass",
    "meh, the crowd is asleep",
    "this DJ can't beatmatch at all",
    "i love this track so much",
    "questo set è incredibile",
    "that scratch routine was clean",
    "too much reverb, sounds muddy",
    "GG both DJs, close battle",
)


def click_track(bpm: float, seconds: float, sr: int = 22050, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Short decaying 1 kHz clicks on every beat over quiet noise; [n] or [n, channels]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    y = rng.normal(0, 0.003, n).astype(np.float32)
    length = int(0.03 * sr)
    click = (np.sin(2 * np.pi * 1000 * np.arange(length) / sr) * np.exp(-np.arange(length) / (0.005 * sr))).astype(np.float32)
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        y[i : i + len(click)] += 0.8 * click[: max(0, min(len(click), n - i))]
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def encode(y: np.ndarray, sr: int = 22050, fmt: str = "wav") -> bytes:
    container, subtype = FORMATS[fmt]
    buf = io.BytesIO()
    sf.write(buf, y, sr, format=container, subtype=subtype)
    return buf.getvalue()


@lru_cache(maxsize=8)
def click_wav(seconds: float, bpm: float = 128.0, sr: int = 44_100) -> bytes:
    """A WAV upload of `seconds` of clicks, cached: load generators send the same bytes repeatedly."""
    return encode(click_track(bpm, seconds, sr=sr), sr=sr)


@lru_cache(maxsize=1)
def catalogue_size() -> int:
    """Battles in the gateway's default catalogue: it scores all of them per recommendation request."""
    return len(json.loads((PROJECT_ROOT / "bentos" / "data" / "battles.json").read_text()))


@lru_cache(maxsize=1)
def known_users() -> tuple[str, ...]:
    """User ids with history in the gateway's default catalogue (they get model recommendations)."""
    users = json.loads((PROJECT_ROOT / "bentos" / "data" / "users.json").read_text())
    return tuple(u["userId"] for u in users)
