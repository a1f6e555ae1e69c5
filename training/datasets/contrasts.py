"""Contrast pairs: the same two tracks mixed twice, once well and once badly in ONE respect.

R^2 over random mixes mixes every fault at once; a pair asks the question a user asks: does the
score move the right way when only the beat matching (or the keys, the levels, the tuning) gets
worse? Each pair is two whole gateway windows rendered from identical tracks, room and mastering;
a model ranks it correctly when its score for the good mix is higher. Chance is 50 %.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from djserve.audio_features import signal_features
from djserve.specs.features import HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES
from djserve.specs.labels import Detune, Key, MixParams, Transition, scores
from training.base import Progress, no_progress
from training.datasets import djsets, store, synth

GENERATOR_VERSION = 1
FOUR_ON_THE_FLOOR = ("house", "deep_house", "tech_house", "progressive", "techno", "trance", "hard_techno")

#: factor -> (the heads it moves, "<output>.<head>")
FACTORS: dict[str, tuple[str, ...]] = {
    "beat_matching": ("technical.bpm_accuracy", "technical.beat_alignment", "judge.technical_skill"),
    "harmony": ("judge.track_selection", "creative.track_selection"),
    "levels": ("judge.energy_flow", "creative.energy_flow"),
    "tuning": ("technical.pitch_stability",),
}


def good_mix(rng: np.random.Generator, frames: int = WINDOW_FRAMES) -> MixParams:
    """A clean 32-beat EQ swap of two tracks in the same key, at the same level."""
    genre = str(rng.choice(FOUR_ON_THE_FLOOR))
    lo, hi = synth.tempo_range(genre)
    key = Key(int(rng.integers(12)), bool(rng.random() < 0.6))
    return MixParams(
        duration_s=frames * HOP_LENGTH / SAMPLE_RATE, bpm=float(rng.uniform(lo, hi)),
        transition=Transition("eq_swap", float(rng.uniform(1.0, 4.0)), 32), first_beat_s=float(rng.uniform(0, 0.4)),
        key_a=key, key_b=key, intensity_a=(level := float(rng.uniform(0.6, 0.9))), intensity_b=level,
        genre_a=genre, genre_b=genre,
    )


def bad_mix(good: MixParams, factor: str, rng: np.random.Generator) -> MixParams:
    if factor == "beat_matching":  # a train wreck: tempos apart and beats off
        return replace(good, tempo_error=float(rng.uniform(0.03, 0.06) * rng.choice([-1, 1])), phase_offset=float(rng.uniform(0.25, 0.45)))
    if factor == "harmony":  # a clashing key (a semitone or a tritone away)
        return replace(good, key_b=Key((good.key_a.tonic + int(rng.choice([1, 6, 11]))) % 12, good.key_a.minor))
    if factor == "levels":  # the next track brought in 9-12 dB too loud
        return replace(good, gain_error_db=float(rng.uniform(9, 12)))
    if factor == "tuning":  # both decks wobbling by 40-70 cents
        wobble = Detune(wobble_cents=float(rng.uniform(40, 70)), rate_hz=float(rng.uniform(0.3, 0.8)))
        return replace(good, detune_a=wobble, detune_b=wobble)
    raise ValueError(f"unknown factor {factor!r}; known: {', '.join(FACTORS)}")


def make_pair(seed: int, index: int, factor: str, frames: int = WINDOW_FRAMES) -> dict[str, Any]:
    rng = np.random.default_rng([seed, index, len(factor)])
    good = good_mix(rng, frames)
    bad = bad_mix(good, factor, rng)
    design_a = synth.draw_track(good.genre_a, good.key_a, good.intensity_a, rng)
    design_b = synth.draw_track(good.genre_b, good.key_b, good.intensity_b, rng)
    master_seed = int(rng.integers(2**31))
    out: dict[str, Any] = {"factor": factor}
    for name, p in (("good", good), ("bad", bad)):
        b = replace(design_b, key=p.key_b)
        y = djsets.render_mix(p, design_a, b, np.random.default_rng(master_seed))  # the same room and mastering
        f = signal_features(y)
        out[name] = {"audio_features": f.audio_features.astype(np.float16), "mixing_features": f.mixing_features,
                     "labels": scores(p, frames), "audio": (y * 32767).astype(np.int16)}
    return out


def _pair(args: tuple[int, int, str, int]) -> dict[str, Any]:
    return make_pair(*args)


def build(per_factor: int, seed: int, progress: Progress = no_progress, keep_audio: bool = False):
    jobs = [(seed, i, factor, WINDOW_FRAMES) for factor in FACTORS for i in range(per_factor)]
    pairs = store.parallel_map(_pair, jobs, len(jobs), "rendering contrast pairs", progress)
    arrays: dict[str, np.ndarray] = {}
    for side in ("good", "bad"):
        arrays[f"{side}_audio_features"] = np.stack([p[side]["audio_features"] for p in pairs])
        arrays[f"{side}_mixing_features"] = np.stack([p[side]["mixing_features"] for p in pairs])
        if keep_audio:
            arrays[f"{side}_audio"] = np.stack([p[side]["audio"] for p in pairs])
    rows = [{"factor": p["factor"], "good": p["good"]["labels"], "bad": p["bad"]["labels"]} for p in pairs]
    return arrays, rows


def load_or_build(root: Path, per_factor: int, seed: int, progress: Progress = no_progress) -> store.StoredDataset:
    params = {"generator": "contrasts", "version": GENERATOR_VERSION, "djsets_version": djsets.GENERATOR_VERSION,
              "per_factor": per_factor, "seed": seed}
    return store.cached(root, "contrasts", params, lambda prog: build(per_factor, seed, prog), progress)
