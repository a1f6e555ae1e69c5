"""The label model: what every judge, technical and creative score MEANS, as a function of how a
mix was made. Training data is generated from these parameters, so this module is the definition
the trained models approximate.

A clip is track A, then a transition, then track B. Each score is a *local quality* q(t) in [0,1]
at every moment t (nothing wrong = 1 for the faults, plain playback = a low neutral value for the
creative skills), and the score of any span of audio is the mean of q over it. So a window's label
is the mean over its frames, a whole set's score is the length-weighted mean of its windows'
scores (exactly what the gateway reports), and a single mistake counts in proportion to how long
it is heard. The curves are sampled on the frame grid of `djserve.specs.features`.

Faults heard while both tracks play count in proportion to how audible the overlap is:
overlap(t) = 2 min(lA, lB) / (lA + lB) of the two tracks' heard levels (the mixer's gain times the
track's own level: 1 when equally loud, 0 when one is silent), and such a score is
1 - overlap(t) * (1 - quality).

Technical (`technical_scores`):
- bpm_accuracy: quality exp(-(tempo error % / 2)^2) over the overlap (1 % -> 0.78, 2 % -> 0.37,
  4 % -> 0.02); 1 elsewhere.
- beat_alignment: quality exp(-(e / 35 ms)^2) over the overlap, e the distance from B's nearest
  beat to A's nearest beat (it moves when the tempos differ); after a hard cut, B's offset from
  where A's next beat would have fallen, for CUT_SPAN_BEATS. 10 ms -> 0.92, 25 ms -> 0.60,
  50 ms -> 0.13.
- transition_quality: during a blend (or CUT_SPAN_BEATS after a cut), the technique's base value
  (TRANSITION_BASE: hard cut 0.55 ... EQ swap 1.0) times a length factor 0.55 + 0.15 log2(beats)
  capped at 1 (2 beats -> 0.70, 4 -> 0.85, 8+ -> 1); 1 elsewhere.
- pitch_stability: exp(-(c / 35 cents)^2) (10 cents -> 0.92, 35 -> 0.37, 70 -> 0.02), c the pitch
  trouble heard: the gain-weighted wobble of the tracks (a deck's wow, keylock artefacts) plus,
  over the overlap, how far apart the two tracks' tunings are (a track played off its key). A
  constant offset of one track alone is not heard, so it does not count.

Judge (`component_scores`):
- technical_skill = 0.30 bpm_accuracy + 0.30 beat_alignment + 0.25 transition_quality
  + 0.15 pitch_stability (the design documents' technical loss weights).
- track_selection: quality = harmonic compatibility of A's and B's keys (`harmony`: same key 1.0,
  Camelot neighbour or relative 0.9, two steps 0.55, anything else 0.15) over the overlap; after a
  hard cut the keys are heard in turn, so half the penalty for CUT_SPAN_BEATS; 1 elsewhere.
- energy_flow: the loudness jump from A to B, jump = |level of B - level of A| in dB (the tracks'
  own levels, LEVEL_DB_PER_INTENSITY dB per unit of intensity, plus the DJ's gain error), penalty
  min(1, max(0, jump - 1.5) / 9); over the transition and the ENERGY_SPAN_BEATS after it the score
  is 1 - penalty * (0.4 + 0.6 abruptness), abruptness 1 for a cut, 0.6 for 2-4 beats, 0.3 for
  longer blends; 1 elsewhere.
- creativity = (genre_mixing + originality) / 2.

Creative (`creative_scores`): track_selection and energy_flow as the judge's;
- genre_mixing: PLAIN (0.35) when no genres meet; over the transition and ENERGY_SPAN_BEATS after it,
  0.5 + 0.5 smoothness when A and B are of different genres (smoothness: 1 for an EQ swap, filter
  sweep or 16+ beat blend, 0.8 for 8, 0.6 for 4, 0.4 for 2 or a cut), PLAIN when they are not.
- originality: the technique being heard: PLAIN (0.35) for plain playback, ORIGINALITY by kind
  during a transition (cut 0.45, crossfades 0.55-0.6, EQ swap 0.8, filter sweep 0.9; +0.1 for
  16+ beats), 0.9 during a filter-sweep build on A.

What the scores cannot know: taste. They measure craft that is defined here; a human jury's
preferences (track choice beyond harmony, crowd reading) are not in the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from djserve.specs.features import HOP_LENGTH, SAMPLE_RATE
from djserve.specs.genres import JUDGE_COMPONENTS

TransitionKind = Literal["none", "cut", "linear", "equal_power", "eq_swap", "filter_sweep"]

TRANSITION_BASE: dict[str, float] = {
    "cut": 0.55,
    "linear": 0.75,
    "equal_power": 0.85,
    "filter_sweep": 0.95,
    "eq_swap": 1.0,
}
ORIGINALITY: dict[str, float] = {"cut": 0.45, "linear": 0.55, "equal_power": 0.6, "eq_swap": 0.8, "filter_sweep": 0.9}
PLAIN = 0.35
"""Creative value of plain playback: nothing creative is happening, nothing is wrong either."""
BUILD_ORIGINALITY = 0.9
CUT_SPAN_BEATS = 4.0
ENERGY_SPAN_BEATS = 8.0
BEAT_TOLERANCE_S = 0.035
TEMPO_TOLERANCE_PCT = 2.0
DETUNE_TOLERANCE_CENTS = 35.0
LEVEL_DB_PER_INTENSITY = 8.0
"""A track's loudness grows with its intensity (quiet intro at 0, peak time at 1)."""
TECHNICAL_WEIGHTS = {"bpm_accuracy": 0.30, "beat_alignment": 0.30, "transition_quality": 0.25, "pitch_stability": 0.15}

TECHNICAL_HEADS = tuple(TECHNICAL_WEIGHTS)
CREATIVE_HEADS = ("track_selection", "energy_flow", "genre_mixing", "originality")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, 0 = C
    minor: bool

    @property
    def camelot(self) -> tuple[int, bool]:
        """(hour 1-12, is minor): neighbours on the wheel are a fifth apart."""
        major_tonic = (self.tonic + 3) % 12 if self.minor else self.tonic  # relative major
        return (major_tonic * 7 % 12) + 1, self.minor


def harmony(a: Key, b: Key) -> float:
    """Compatibility of two keys heard together (the Camelot wheel DJs mix by)."""
    (ha, ma), (hb, mb) = a.camelot, b.camelot
    steps = min((ha - hb) % 12, (hb - ha) % 12)
    if steps == 0 and ma == mb:
        return 1.0
    if (steps == 1 and ma == mb) or (steps == 0 and ma != mb):
        return 0.9
    if steps == 2 and ma == mb or (steps == 1 and ma != mb):
        return 0.55
    return 0.15


@dataclass(frozen=True)
class Detune:
    """A track's pitch in cents against its key: a constant offset (played off its key, heard only
    against the other track) plus a wobble (a deck's wow, keylock artefacts), heard on its own."""

    offset_cents: float = 0.0
    wobble_cents: float = 0.0
    rate_hz: float = 0.3
    phase: float = 0.0

    def wobble(self, t: np.ndarray) -> np.ndarray:
        if self.wobble_cents == 0:
            return np.zeros_like(t)
        return self.wobble_cents * np.sin(2 * np.pi * self.rate_hz * t + self.phase)

    def at(self, t: np.ndarray) -> np.ndarray:
        return self.offset_cents + self.wobble(t)


@dataclass(frozen=True)
class Transition:
    kind: TransitionKind = "none"
    start_s: float = 0.0
    """When B starts to be heard (the cut itself for a cut)."""
    beats: float = 0.0
    """Length in beats of A's tempo (0 for a cut)."""


@dataclass(frozen=True)
class MixParams:
    """Everything about a clip the scores depend on (timbre, levels, EQ and noise do not)."""

    duration_s: float
    bpm: float
    """A's tempo."""
    transition: Transition = field(default_factory=Transition)
    tempo_error: float = 0.0
    """B's tempo / A's tempo - 1 (B keeps it after the transition)."""
    phase_offset: float = 0.0
    """B's beat grid against A's when B starts, in beats, in [-0.5, 0.5)."""
    first_beat_s: float = 0.0
    """A's first beat."""
    key_a: Key = Key(0, True)
    key_b: Key = Key(0, True)
    detune_a: Detune = Detune()
    detune_b: Detune = Detune()
    gain_error_db: float = 0.0
    """B's level against A's after the DJ's gain matching."""
    intensity_a: float = 0.5
    intensity_b: float = 0.5
    genre_a: str = "house"
    genre_b: str = "house"
    build: tuple[float, float] | None = None
    """(start, end) of a filter-sweep build on A, if any."""

    @classmethod
    def from_dict(cls, d: dict) -> "MixParams":
        """The inverse of dataclasses.asdict (what datasets store per clip)."""
        d = dict(d)
        d["transition"] = Transition(**d["transition"])
        d["key_a"], d["key_b"] = Key(**d["key_a"]), Key(**d["key_b"])
        d["detune_a"], d["detune_b"] = Detune(**d["detune_a"]), Detune(**d["detune_b"])
        d["build"] = tuple(d["build"]) if d.get("build") else None
        return cls(**d)

    @property
    def beat_s(self) -> float:
        return 60.0 / self.bpm

    @property
    def beat_s_b(self) -> float:
        return self.beat_s / (1.0 + self.tempo_error)

    @property
    def blend_end_s(self) -> float:
        t = self.transition
        return t.start_s + t.beats * self.beat_s

    def beats_a(self) -> np.ndarray:
        """A's beat times (s) from its first beat to the clip's end."""
        return np.arange(self.first_beat_s, self.duration_s, self.beat_s)

    def beats_b(self) -> np.ndarray:
        """B's beat times: its grid starts phase_offset beats after A's beat nearest the transition."""
        t0 = self.transition.start_s
        k = np.round((t0 - self.first_beat_s) / self.beat_s)
        anchor = self.first_beat_s + k * self.beat_s + self.phase_offset * self.beat_s
        first = anchor - np.ceil((anchor - t0) / self.beat_s_b) * self.beat_s_b
        return np.arange(first, self.duration_s, self.beat_s_b)


def frame_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of each frame of the feature grid."""
    return np.arange(n_frames) * HOP_LENGTH / SAMPLE_RATE


def gains(p: MixParams, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear gains of A and B over time (before B's level error), as the mix renders them."""
    tr = p.transition
    if tr.kind == "none":
        return np.ones_like(t), np.zeros_like(t)
    if tr.kind == "cut" or tr.beats <= 0:
        b = (t >= tr.start_s).astype(np.float64)
        return 1.0 - b, b
    x = np.clip((t - tr.start_s) / (p.blend_end_s - tr.start_s), 0.0, 1.0)
    if tr.kind == "linear":
        return 1.0 - x, x
    return np.cos(np.pi * x / 2), np.sin(np.pi * x / 2)  # equal power; EQ swap and sweep shape it further


def _nearest_distance(t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Distance (s) from each t to the nearest of the sorted `beats`."""
    if len(beats) == 0:
        return np.full_like(t, np.inf)
    i = np.clip(np.searchsorted(beats, t), 1, len(beats) - 1)
    return np.minimum(np.abs(t - beats[i - 1]), np.abs(t - beats[i]))


def _length_factor(beats: float) -> float:
    return min(1.0, 0.55 + 0.15 * np.log2(max(beats, 1.0)))


def curves(p: MixParams, n_frames: int) -> dict[str, np.ndarray]:
    """Every score's local quality q(t) on the frame grid: {"technical.bpm_accuracy": [T], ...}."""
    t = frame_times(n_frames)
    tr = p.transition
    ga, gb = gains(p, t)
    both = (ga > 0.05) & (gb > 0.05)
    is_cut = tr.kind == "cut"
    if is_cut:
        cut_span = (t >= tr.start_s) & (t < tr.start_s + CUT_SPAN_BEATS * p.beat_s)
    else:
        cut_span = np.zeros_like(t, dtype=bool)
    ones = np.ones_like(t)

    # What is heard: the mixer's gains times each track's own level (a quiet track under a loud one
    # is barely heard, whatever the crossfader says).
    la = ga * 10 ** (LEVEL_DB_PER_INTENSITY * p.intensity_a / 20)
    lb = gb * 10 ** ((LEVEL_DB_PER_INTENSITY * p.intensity_b + p.gain_error_db) / 20)
    overlap = np.where(both, 2 * np.minimum(la, lb) / np.maximum(la + lb, 1e-9), 0.0)

    def heard_over_overlap(quality: np.ndarray | float) -> np.ndarray:
        return 1.0 - overlap * (1.0 - quality)

    bpm = heard_over_overlap(np.exp(-((abs(p.tempo_error) * 100 / TEMPO_TOLERANCE_PCT) ** 2)))

    beats_a, beats_b = p.beats_a(), p.beats_b()
    err = _nearest_distance(beats_b, beats_a)  # each B beat against A's grid
    err_at_t = np.interp(t, beats_b, err) if len(beats_b) else np.zeros_like(t)
    if is_cut:
        # A's grid continues past a cut in the listener's head: B's first beat is measured against it.
        first = beats_b[beats_b >= tr.start_s][:1]
        grid = np.arange(p.first_beat_s, p.duration_s + 4 * p.beat_s, p.beat_s)
        cut_err = float(_nearest_distance(first, grid)[0]) if len(first) else 0.0
        align = np.where(cut_span, np.exp(-((cut_err / BEAT_TOLERANCE_S) ** 2)), 1.0)
    else:
        align = heard_over_overlap(np.exp(-((err_at_t / BEAT_TOLERANCE_S) ** 2)))

    if tr.kind == "none":
        trans = ones.copy()
    else:
        value = TRANSITION_BASE[tr.kind] * (1.0 if is_cut else _length_factor(tr.beats))
        trans = np.where(both | cut_span, value, 1.0)

    heard = np.maximum(la + lb, 1e-12)
    wobble = (la * np.abs(p.detune_a.wobble(t)) + lb * np.abs(p.detune_b.wobble(t))) / heard
    cents = wobble + overlap * abs(p.detune_a.offset_cents - p.detune_b.offset_cents)
    pitch = np.exp(-((cents / DETUNE_TOLERANCE_CENTS) ** 2))

    technical = {"bpm_accuracy": bpm, "beat_alignment": align, "transition_quality": trans, "pitch_stability": pitch}
    skill = sum(w * technical[k] for k, w in TECHNICAL_WEIGHTS.items())

    h = harmony(p.key_a, p.key_b)
    selection = np.where(cut_span, 1.0 - 0.5 * (1.0 - h), heard_over_overlap(h))

    after = (t >= tr.start_s) & (t < (tr.start_s if is_cut else p.blend_end_s) + ENERGY_SPAN_BEATS * p.beat_s)
    if tr.kind == "none":
        energy = ones.copy()
        genre = np.full_like(t, PLAIN)
        orig = np.full_like(t, PLAIN)
    else:
        abrupt = 1.0 if is_cut else (0.6 if tr.beats <= 4 else 0.3)
        jump = abs(LEVEL_DB_PER_INTENSITY * (p.intensity_b - p.intensity_a) + p.gain_error_db)
        penalty = min(1.0, max(0.0, jump - 1.5) / 9.0)
        energy = np.where(after, 1.0 - penalty * (0.4 + 0.6 * abrupt), 1.0)
        if p.genre_a != p.genre_b:
            if tr.kind in ("eq_swap", "filter_sweep") or tr.beats >= 16:
                smooth = 1.0
            else:
                smooth = {8: 0.8, 4: 0.6}.get(int(tr.beats), 0.4) if not is_cut else 0.4
            genre = np.where(after, 0.5 + 0.5 * smooth, PLAIN)
        else:
            genre = np.full_like(t, PLAIN)
        technique = ORIGINALITY[tr.kind] + (0.1 if tr.beats >= 16 else 0.0)
        orig = np.where(both | cut_span, technique, PLAIN)
    if p.build is not None:
        orig = np.where((t >= p.build[0]) & (t < p.build[1]), np.maximum(orig, BUILD_ORIGINALITY), orig)

    judge = {
        "technical_skill": skill,
        "track_selection": selection,
        "energy_flow": energy,
        "creativity": (genre + orig) / 2,
    }
    creative = {"track_selection": selection, "energy_flow": energy, "genre_mixing": genre, "originality": orig}
    out = {f"judge.{k}": judge[k] for k in JUDGE_COMPONENTS}
    out.update({f"technical.{k}": technical[k] for k in TECHNICAL_HEADS})
    out.update({f"creative.{k}": creative[k] for k in CREATIVE_HEADS})
    return {k: np.clip(np.asarray(v, np.float64), 0.0, 1.0) for k, v in out.items()}


def scores(p: MixParams, n_frames: int, start: int = 0, stop: int | None = None) -> dict[str, float]:
    """The label of frames [start, stop): the mean of each curve over that span."""
    return {k: float(v[start:stop].mean()) for k, v in curves(p, n_frames).items()}
