"""DJ set clips as audio with controlled mixing quality: the judge's, technical's and creative's data.

A clip is track A, a transition, track B, TRAIN_FRAMES long (half a gateway window). How it was mixed is drawn from the distributions below and rendered; its labels are the label model's
(`djserve.specs.labels`) scores of those parameters, its inputs are `djserve.audio_features` of the
rendered audio (what the gateway computes for an upload).

What is drawn per clip (seeded): A's genre and tempo (the genre's range) and B's genre (the same
genre 65 %, or one whose range reaches A's tempo); the transition (none 5 %, hard cut 12 %,
linear 13 %, equal-power 18 %, EQ swap 30 %, filter sweep 22 %; blends of 2-32 beats, mostly 16-32 as
in club sets) and where it starts (most of the blend inside the clip); B's tempo error (beat-matched 55 %, 0.4-1.5 % 15 %, 1.5-7 % 30 %) and beat phase (within 10 ms
50 %, else 35 ms to half a beat); keys (same 20 %, neighbours 30 %, two steps 10 %, clash 40 %); pitch trouble on either track (off its key by 10-100 cents 30 %, a wobble of 8-80
cents 25 %); B's level
error (within 1 dB 55 % of the time, else 3-10 dB); intensities (0.35-1: drums in); a filter-sweep build on A (15 %);
the track list sent as metadata (the clip's two tracks among up to six others of the set, or none).
Timbre, arrangement, room and mastering vary freely and never change a label.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from djserve.audio_features import metadata_tokens, signal_features
from djserve.specs.features import HOP_LENGTH, SAMPLE_RATE
from djserve.specs.labels import LEVEL_DB_PER_INTENSITY, Detune, Key, MixParams, Transition, curves, gains
from training.base import Progress, no_progress
from training.datasets import store, synth

TRAIN_FRAMES = 512
"""Training clips: 11.9 s around a transition. The labels are means of local quality, so a short
clip is scored exactly like the same span inside a window, and half a window costs half to render
and a quarter to learn from (the transition fills more of it)."""
MAX_TOKENS = 64

_KINDS = ("none", "cut", "linear", "equal_power", "eq_swap", "filter_sweep")
_KIND_P = (0.05, 0.12, 0.13, 0.18, 0.30, 0.22)
_BLEND_BEATS = (2, 4, 8, 16, 32)
_BLEND_P = (0.05, 0.12, 0.23, 0.35, 0.25)

_TITLE_WORDS = (
    "midnight", "groove", "warehouse", "signal", "echo", "horizon", "pulse", "velvet", "neon", "drift",
    "voltage", "sunrise", "shadow", "rhythm", "gravity", "ocean", "circuit", "fever", "golden", "motion",
    "spiral", "static", "bloom", "orbit", "rush", "mirage", "tunnel", "heat", "glass", "wave",
)
_ARTISTS = (
    "nova", "kairo", "lumen", "dj vega", "sable", "mara", "onyx", "rafa k", "delta", "ikaro",
    "selene", "bram", "yuki", "taro", "lea m", "koda", "vex", "ana sol", "brixton", "oriel",
)


def _key_near(a: Key, rng: np.random.Generator) -> Key:
    """B's key: the same (20 %), a Camelot neighbour or the relative key (30 %), two steps round
    the wheel (10 %), or a clash (40 %)."""
    r = rng.random()
    if r < 0.20:
        return a
    if r < 0.50:  # a fifth up or down, or the relative major/minor
        choice = int(rng.integers(3))
        if choice == 2:
            return Key((a.tonic + (3 if a.minor else 9)) % 12, not a.minor)
        return Key((a.tonic + (7 if choice == 0 else 5)) % 12, a.minor)
    if r < 0.60:
        return Key((a.tonic + int(rng.choice([2, 10]))) % 12, a.minor)
    return Key((a.tonic + int(rng.choice([1, 3, 6, 8, 11]))) % 12, a.minor)  # a semitone, tritone...: clashes


def _detune(rng: np.random.Generator) -> Detune:
    """Pitch trouble on a track: 30 % off its key by 10-100 cents, 25 % a 8-80 cent wobble."""
    offset = float(rng.uniform(10, 100) * rng.choice([-1, 1])) if rng.random() < 0.3 else 0.0
    wobble = float(rng.uniform(8, 80)) if rng.random() < 0.25 else 0.0
    return Detune(offset, wobble, float(rng.uniform(0.15, 1.0)), float(rng.uniform(0, 2 * np.pi)))


def _compatible_genres(bpm: float) -> list[str]:
    return [g for g in synth.GENRES if synth.tempo_range(g)[0] * 0.94 <= bpm <= synth.tempo_range(g)[1] * 1.06]


def sample_mix(rng: np.random.Generator, frames: int) -> tuple[MixParams, synth.TrackDesign, synth.TrackDesign, list[dict]]:
    clip_s = frames * HOP_LENGTH / SAMPLE_RATE
    genre_a = str(rng.choice(synth.GENRES))
    lo, hi = synth.tempo_range(genre_a)
    bpm = float(rng.uniform(lo, hi))
    genre_b = genre_a if rng.random() < 0.65 else str(rng.choice(_compatible_genres(bpm)))
    beat = 60.0 / bpm
    kind = str(rng.choice(_KINDS, p=_KIND_P))
    beats = 0.0 if kind in ("none", "cut") else float(rng.choice(_BLEND_BEATS, p=_BLEND_P))
    length = beats * beat
    # Blends may start before the clip: a clip is any stretch of a set, and most of them should
    # hear the two tracks together (that is where mixing is judged). Cuts land inside the clip.
    if kind in ("none", "cut"):
        start = float(rng.uniform(1.0, clip_s - 1.0))
    else:
        start = float(rng.uniform(-0.5 * length, max(0.5, clip_s - 0.5 * min(length, clip_s))))
    # Mostly clean or clearly off: a judge hears a 2 % drift or a 40 ms flam; 0.5 % and 8 ms are
    # below what anyone (or a 23 ms frame) can tell apart, and would only blur the labels.
    r = rng.random()
    tempo_error = 0.0 if r < 0.55 else float(rng.uniform(0.004, 0.015) if r < 0.7 else rng.uniform(0.015, 0.07))
    tempo_error *= float(rng.choice([-1, 1]))
    r = rng.random()
    tight = 0.010 / beat  # 10 ms in beats
    phase = float(rng.uniform(-tight, tight) if r < 0.5 else rng.uniform(0.035 / beat, 0.5) * rng.choice([-1, 1]))
    key_a = Key(int(rng.integers(12)), bool(rng.random() < 0.6))
    key_b = _key_near(key_a, rng)
    gain_error = float(rng.uniform(-1, 1) if rng.random() < 0.55 else rng.uniform(3, 10) * rng.choice([-1, 1]))
    # Club tracks with their drums in: a mix is judged where both grooves play (intros are rarer).
    intensity_a, intensity_b = (float(x) for x in rng.uniform(0.35, 1.0, 2))
    build = None
    if rng.random() < 0.15 and start > 3:
        b_len = float(rng.uniform(2, min(8, start - 1)))
        b0 = float(rng.uniform(0, start - b_len))
        build = (b0, b0 + b_len)
    params = MixParams(
        duration_s=clip_s,
        bpm=bpm,
        transition=Transition(kind, start if kind != "none" else 0.0, beats),  # type: ignore[arg-type]
        tempo_error=tempo_error,
        phase_offset=phase,
        first_beat_s=float(rng.uniform(0, beat)),
        key_a=key_a,
        key_b=key_b,
        detune_a=_detune(rng),
        detune_b=_detune(rng),
        gain_error_db=gain_error,
        intensity_a=intensity_a,
        intensity_b=intensity_b,
        genre_a=genre_a,
        genre_b=genre_b,
        build=build,
    )
    design_a = synth.draw_track(genre_a, key_a, intensity_a, rng)
    design_b = synth.draw_track(genre_b, key_b, intensity_b, rng)
    tracks = []
    if rng.random() < 0.7:
        others = [str(rng.choice(synth.GENRES)) for _ in range(int(rng.integers(0, 7)))]
        for genre in [genre_a, genre_b, *others]:
            words = rng.choice(_TITLE_WORDS, size=int(rng.integers(1, 4)), replace=False)
            tracks.append({"title": " ".join(words), "artist": str(rng.choice(_ARTISTS)), "genre": genre.replace("_", " ")})
        order = rng.permutation(len(tracks))
        tracks = [tracks[i] for i in order]
    return params, design_a, design_b, tracks


def render_mix(p: MixParams, design_a: synth.TrackDesign, design_b: synth.TrackDesign, rng: np.random.Generator) -> np.ndarray:
    """The clip's audio: mono float32 at the contract's rate, p.duration_s long."""
    n = int(round(p.duration_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    a = synth.render_track(design_a, p.bpm, p.first_beat_s, p.duration_s, p.detune_a)
    # Each track at a loudness that grows with its intensity (-22 to -14 dBFS RMS); B off by its level error.
    scale_a = 10 ** ((-22 + LEVEL_DB_PER_INTENSITY * p.intensity_a) / 20) / (np.sqrt(np.mean(a.mix**2)) + 1e-9)
    a_low, a_high = a.low * scale_a, a.high * scale_a
    tr = p.transition
    if p.build is not None:
        a_low = synth.lowpass_sweep(a_low, *p.build, close=False)
        a_high = synth.lowpass_sweep(a_high, *p.build, close=False)
    if tr.kind == "none":
        y = a_low + a_high
    else:
        b_first = float(p.beats_b()[0])
        b = synth.render_track(design_b, p.bpm * (1 + p.tempo_error), b_first, p.duration_s, p.detune_b)
        live = t >= tr.start_s
        rms_b = np.sqrt(np.mean(b.mix[live] ** 2)) if live.any() else 1.0
        scale_b = 10 ** ((-22 + LEVEL_DB_PER_INTENSITY * p.intensity_b + p.gain_error_db) / 20) / (rms_b + 1e-9)
        b_low, b_high = b.low * scale_b, b.high * scale_b
        ga, gb = gains(p, t)
        if tr.kind == "eq_swap":
            mid = tr.start_s + (p.blend_end_s - tr.start_s) / 2
            swap = np.clip((t - mid) / (0.5 * p.beat_s) + 0.5, 0, 1)  # basses change over half a beat
            y = a_low * (1 - swap) * (ga > 0) + a_high * ga + b_low * swap + b_high * gb
        elif tr.kind == "filter_sweep":
            swept = synth.lowpass_sweep(a_low + a_high, tr.start_s, p.blend_end_s, close=True)
            y = swept * np.maximum(ga, (t < p.blend_end_s) * 0.7) + (b_low + b_high) * gb
            y = np.where(t >= p.blend_end_s, (b_low + b_high), y)
        else:
            ramp = np.clip((t - tr.start_s) / 0.002, 0, 1) if tr.kind == "cut" else 1.0  # a 2 ms declick
            y = (a_low + a_high) * (ga if tr.kind != "cut" else 1 - ramp) + (b_low + b_high) * (gb if tr.kind != "cut" else ramp)
    return synth.master(y, rng)


def make_clip(seed: int, index: int, frames: int = TRAIN_FRAMES) -> dict[str, Any]:
    """Clip `index` of the dataset of `seed`: its own random stream, so clips can be made in any
    order and in any process and still come out the same."""
    rng = np.random.default_rng([seed, index, frames])
    params, design_a, design_b, tracks = sample_mix(rng, frames)
    y = render_mix(params, design_a, design_b, rng)
    f = signal_features(y)
    label_curves = curves(params, frames)
    return {
        "audio_features": f.audio_features.astype(np.float16),
        "mixing_features": f.mixing_features,
        "tokens": metadata_tokens(tracks, max_tokens=MAX_TOKENS) if tracks else np.zeros(1, np.int64),
        "curves": np.stack([label_curves[k] for k in sorted(label_curves)]).astype(np.float16),
        "labels": {k: float(v.mean()) for k, v in label_curves.items()},
        "params": json.loads(json.dumps(asdict(params))),
        "tracks": tracks,
    }


LABEL_KEYS: tuple[str, ...] = tuple(sorted(curves(MixParams(duration_s=1.0, bpm=120.0), 4)))
"""The order of the `curves` rows: "creative.*", "judge.*", "technical.*" sorted by name."""


GENERATOR_VERSION = 6
"""Bump when the generator or the label model changes what a seed produces."""


def _clip(args: tuple[int, int, int]) -> dict[str, Any]:
    return make_clip(*args)


def build(n: int, seed: int, frames: int, progress: Progress = no_progress, workers: int = 2) -> tuple[dict[str, np.ndarray], list[dict]]:
    """n clips as stacked arrays (float16 mel to halve the size) and per-clip records."""
    clips = store.parallel_map(_clip, [(seed, i, frames) for i in range(n)], n, f"rendering {frames}-frame DJ set clips", progress, workers)
    tokens = np.zeros((n, MAX_TOKENS), np.int64)  # 0 is the padding id of metadata_tokens
    for i, c in enumerate(clips):
        tokens[i, : len(c["tokens"])] = c["tokens"]
    arrays = {
        "audio_features": np.stack([c["audio_features"] for c in clips]),
        "mixing_features": np.stack([c["mixing_features"] for c in clips]).astype(np.float32),
        "tokens": tokens,
        "token_lengths": np.array([max(1, int(np.count_nonzero(c["tokens"]))) for c in clips], np.int64),
        "curves": np.stack([c["curves"] for c in clips]),
        "labels": np.array([[c["labels"][k] for k in LABEL_KEYS] for c in clips], np.float32),
    }
    rows = [{"params": c["params"], "tracks": c["tracks"]} for c in clips]
    return arrays, rows


def load_or_build(root: Path, n: int, seed: int, frames: int, progress: Progress = no_progress) -> store.StoredDataset:
    params = {"generator": "djsets", "version": GENERATOR_VERSION, "clips": n, "seed": seed, "frames": frames}
    return store.cached(root, "djsets", params, lambda prog: build(n, seed, frames, prog), progress)
