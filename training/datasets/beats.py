"""Beat clips: a few seconds of music with exact beat times, or of sound without a beat (the beat
tracker's data).

A clip is what the live endpoint gets: one chunk of a DJ's stream, analysed on its own
(`signal_features(y).beat_mel`, exactly the gateway's numbers). Training and validation clips are
TRAIN_S long (the trainer crops spans of them, starting at the clip's first frame half the time,
so a chunk's edges are seen as served); held-out clips are HELDOUT_S long, analysed whole.

What is drawn per clip (seeded by (seed, split, index), so clips are made in any order and process):
- kind: one track (42 %), two beat-matched tracks blended (25 %: a crossfade, an EQ swap of the
  basses, or both playing; B within 8 ms of A's grid), music that starts or stops inside the clip
  on a beat (13 %: a drop after pads or silence, a stop), or no beat at all (20 %: pads with
  unmetered chord changes, noise beds and risers, crowd, near silence, digital silence);
- genre: every genre of `synth.STYLES` in turn; tempo in the genre's range, a quarter of the time
  moved by a DJ's pitch fader (+-8 %, kept within 80-178 BPM); beat phase, key, intensity from
  quiet (no kick, no snare) to peak;
- the room and the chain: reverb (30 %), a noise or crowd bed under the music (25 %), a slow level
  drift (20 %), then `synth.master` (noise floor, hum, crowd, EQ tilt, band limit, saturation) and a
  random level.

Labels: the exact beat times in the clip (the grid `synth.render_track` played, A's in a blend;
none where no music plays) and has_beat. The per-frame target is derived from them by
`frame_targets`. Held-out clips keep their audio (int16; their features are computed from that
same quantised audio, so librosa and the model hear the same thing); any clip can also be
re-rendered by `make_clip(seed, split, index)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from djserve.audio_features import signal_features
from djserve.beats import FPS, frame_of
from djserve.specs.features import SAMPLE_RATE
from djserve.specs.labels import Detune, Key
from training.base import Progress, no_progress
from training.datasets import store, synth

SR = SAMPLE_RATE
GENERATOR_VERSION = 3
"""Bump when the generator changes what a seed produces."""
TRAIN_S = 8.0
HELDOUT_S = (2.0, 10.0)
"""Held-out clip lengths (uniform): the live endpoint's chunks are 0.3-10 s."""
MIN_BPM, MAX_BPM = 80.0, 178.0
MAX_BEATS = 40
"""Columns of the NaN-padded beat table: 10 s at 178 BPM is 30 beats."""
SPLITS = ("train", "val", "heldout")
KINDS = ("single", "blend", "entry", "nobeat")
_KIND_P = (0.42, 0.25, 0.13, 0.20)
NOBEAT_KINDS = ("pads", "noise", "crowd", "quiet", "silence")
_NOBEAT_P = (0.35, 0.25, 0.2, 0.12, 0.08)


@dataclass(frozen=True)
class Sizes:
    train: int
    val: int
    heldout: int


@dataclass
class Clip:
    audio: np.ndarray  # float32 [n] at SR
    beats: np.ndarray  # seconds, ascending
    row: dict[str, Any]


@dataclass
class BeatSplit:
    """One split: ragged per-clip features, the beat table, and (held-out) the audio."""

    mel: np.ndarray  # float16 [sum of T, 84]
    starts: np.ndarray  # int64 [N+1]: clip i is mel[starts[i]:starts[i+1]]
    beats: np.ndarray  # float64 [N, MAX_BEATS], NaN-padded
    has_beat: np.ndarray  # bool [N]
    rows: list[dict[str, Any]]
    audio: np.ndarray | None = None  # int16 [sum of samples]
    audio_starts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def n_frames(self, i: int) -> int:
        return int(self.starts[i + 1] - self.starts[i])

    def frames(self, i: int) -> np.ndarray:
        return self.mel[self.starts[i] : self.starts[i + 1]].astype(np.float32)

    def beat_times(self, i: int) -> np.ndarray:
        b = self.beats[i]
        return b[~np.isnan(b)]

    def waveform(self, i: int) -> np.ndarray:
        if self.audio is None or self.audio_starts is None:
            raise ValueError("this split keeps no audio (only held-out clips do); re-render with make_clip")
        return self.audio[self.audio_starts[i] : self.audio_starts[i + 1]].astype(np.float32) / 32767.0


def frame_targets(beats: np.ndarray, n_frames: int, neighbour: float = 0.5) -> np.ndarray:
    """float32 [n_frames]: 1 on each beat's frame, `neighbour` on the frames either side (a beat
    between two frame centres is half-heard on both; widening also forgives the +-1 frame the
    model cannot resolve), 0 elsewhere."""
    y = np.zeros(n_frames, np.float32)
    f = frame_of(beats)
    f = f[(f >= -1) & (f <= n_frames)]
    for d in (-1, 1):
        g = f + d
        g = g[(g >= 0) & (g < n_frames)]
        y[g] = np.maximum(y[g], neighbour)
    f = f[(f >= 0) & (f < n_frames)]
    y[f] = 1.0
    return y


# --- one clip -------------------------------------------------------------------------------------


def make_clip(seed: int, split: str, index: int) -> Clip:
    """Clip `index` of `split` for `seed`, identical in any process."""
    rng = np.random.default_rng([seed, SPLITS.index(split), index])
    duration = TRAIN_S if split != "heldout" else float(np.round(rng.uniform(*HELDOUT_S), 2))
    n = int(duration * SR)
    kind = str(rng.choice(KINDS, p=_KIND_P))
    genre = synth.GENRES[(index + seed) % len(synth.GENRES)]
    row: dict[str, Any] = {"split": split, "index": index, "kind": kind, "duration_s": duration, "genre": genre}
    if kind == "nobeat":
        sound = str(rng.choice(NOBEAT_KINDS, p=_NOBEAT_P))
        row["sound"] = sound
        y, beats = _no_beat(sound, n, rng), np.zeros(0)
    else:
        bpm = _tempo(genre, rng)
        first = float(rng.uniform(0, 60.0 / bpm))
        row.update(bpm=bpm, first_beat_s=first)
        a = _track(genre, bpm, first, duration, rng, row, "a")
        y = _blend(a, bpm, first, duration, rng, row) if kind == "blend" else a.mix
        beats = first + np.arange(int(np.ceil((duration - first) * bpm / 60.0)) + 1) * 60.0 / bpm
        if kind == "entry":
            y, beats = _entry(y, beats, bpm, rng, row)
    if row.get("sound") not in ("quiet", "silence"):
        y = _room(y, rng, row)
    y = y[:n]
    y = synth.master(y, rng) if row.get("sound") != "silence" else y.astype(np.float32)
    level = row["level_db"] = float(rng.uniform(-70, -55) if row.get("sound") == "quiet" else rng.uniform(-18, 0))
    y = (y * 10 ** (level / 20)).astype(np.float32)  # master peaks at -12..-1 dBFS
    # Beats a frame can hold: frame t is centred on t / FPS and the clip has len(y) // 512 frames.
    last = (len(y) // 512 - 0.5) / FPS
    return Clip(y, beats[(beats >= 0) & (beats < last)], row)


def _tempo(genre: str, rng: np.random.Generator) -> float:
    lo, hi = synth.tempo_range(genre)
    bpm = rng.uniform(lo, hi)
    if rng.random() < 0.25:  # the pitch fader
        bpm *= rng.uniform(0.92, 1.08)
    return float(np.round(np.clip(bpm, MIN_BPM, MAX_BPM), 3))


def _track(genre: str, bpm: float, first: float, duration: float, rng: np.random.Generator, row: dict,
           tag: str) -> synth.Stems:
    intensity = float(rng.uniform(0.05, 1.0))
    key = Key(int(rng.integers(12)), bool(rng.random() < 0.6))
    design = synth.draw_track(genre, key, intensity, rng)
    row[f"intensity_{tag}"] = intensity
    s = synth.render_track(design, bpm, first, duration, Detune())  # in tune: pitch is not the beat's business
    scale = 0.1 / (np.sqrt(np.mean(s.mix**2)) + 1e-9)  # -20 dBFS RMS before mixing
    return synth.Stems(s.low * scale, s.high * scale)


def _blend(a: synth.Stems, bpm: float, first: float, duration: float, rng: np.random.Generator,
           row: dict) -> np.ndarray:
    """A and a second track beat-matched to A's grid (within 8 ms), mixed the way DJs blend."""
    near = [g for g in synth.GENRES if synth.tempo_range(g)[0] * 0.92 <= bpm <= synth.tempo_range(g)[1] * 1.08]
    genre_b = str(rng.choice(near or [row["genre"]]))
    offset = float(rng.uniform(-0.008, 0.008))
    b = _track(genre_b, bpm, (first + offset) % (60.0 / bpm), duration, rng, row, "b")
    t = np.arange(len(a.low)) / SR
    style = str(rng.choice(["crossfade", "eq_swap", "both"]))
    row.update(genre_b=genre_b, blend=style, offset_s=offset)
    if style == "both":
        return a.mix + 10 ** (rng.uniform(-6, 6) / 20) * b.mix
    start, length = rng.uniform(-0.3, 0.7) * duration, rng.uniform(0.3, 1.2) * duration
    fade = np.clip((t - start) / length, 0, 1)
    if style == "crossfade":  # equal power
        return a.mix * np.cos(fade * np.pi / 2) + b.mix * np.sin(fade * np.pi / 2)
    swap = (t >= start + length / 2).astype(np.float64)  # the basses change at once, mid-blend
    return a.low * (1 - swap) + b.low * swap + a.high * np.cos(fade * np.pi / 2) + b.high * np.sin(fade * np.pi / 2)


def _entry(y: np.ndarray, beats: np.ndarray, bpm: float, rng: np.random.Generator,
           row: dict) -> tuple[np.ndarray, np.ndarray]:
    """The music starts on a beat after a bed of pads, noise or silence (a drop), or stops half a
    beat after one; beats only where it plays."""
    n = len(y)
    inside = beats[(beats > 0.2 * n / SR) & (beats < 0.8 * n / SR)]
    if len(inside) == 0:
        return y, beats
    at = float(rng.choice(inside))
    starts = rng.random() < 0.6
    cut = at - 0.01 if starts else at + 30.0 / bpm
    ramp = np.clip((np.arange(n) / SR - cut) / 0.01, 0, 1)
    gate = ramp if starts else 1 - ramp
    bed_kind = str(rng.choice(["pads", "noise", "crowd", "none"]))
    bed = _no_beat(bed_kind, n, rng) * 10 ** (rng.uniform(-20, -6) / 20) if bed_kind != "none" else 0.0
    row.update(entry="start" if starts else "stop", entry_s=cut, bed=bed_kind)
    return y * gate + bed, beats[beats >= cut] if starts else beats[beats <= at]


def _room(y: np.ndarray, rng: np.random.Generator, row: dict) -> np.ndarray:
    """What a venue and a recording do beyond `synth.master`: reverb, a bed under the music, a slow
    level drift."""
    n = len(y)
    rms = np.sqrt(np.mean(y**2)) + 1e-9
    if rng.random() < 0.3:
        rt60 = float(rng.uniform(0.2, 1.5))
        m = int(rt60 * SR)
        ir = rng.normal(0, 1, m) * np.exp(-6.9 * np.arange(m) / m)
        wet = signal.fftconvolve(y, ir)[:n]
        y = y + wet / (np.sqrt(np.mean(wet**2)) + 1e-9) * rms * rng.uniform(0.1, 0.6)
        row["reverb_s"] = rt60
    if rng.random() < 0.25:
        bed = _no_beat(str(rng.choice(["noise", "crowd", "pads"])), n, rng)
        y = y + bed / (np.sqrt(np.mean(bed**2)) + 1e-9) * rms * 10 ** (rng.uniform(-25, -6) / 20)
        row["bed"] = True
    if rng.random() < 0.2:
        t = np.arange(n) / SR
        y = y * 10 ** (rng.uniform(3, 10) * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6)) / 20)
    return y


# --- sound without a beat -------------------------------------------------------------------------


def _no_beat(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "pads":
        y = _pads(n, rng)
        return y + _noise(n, rng) * rng.uniform(0, 0.3) * np.std(y) if rng.random() < 0.5 else y
    if kind == "noise":
        return _noise(n, rng)
    if kind == "crowd":
        return _crowd(n, rng)
    if kind == "quiet":  # a room tone and maybe hum: made near-silent by the level draw
        y = _coloured(n, rng, rng.uniform(0.5, 2.0))
        if rng.random() < 0.4:
            y = y + rng.uniform(0.1, 1) * np.sin(2 * np.pi * rng.choice([50, 60]) * np.arange(n) / SR)
        return y
    return np.zeros(n)


def _pads(n: int, rng: np.random.Generator) -> np.ndarray:
    """Sustained chords (detuned voices, a few partials) changing at unmetered times, with slow
    attacks and long releases: harmony and timbre with no pulse."""
    y = np.zeros(n)
    pos = -int(rng.uniform(0, 2) * SR)
    partials = int(rng.integers(2, 7))
    bright = rng.uniform(0.8, 2.0)
    while pos < n:
        seg = int(rng.uniform(1.5, 5.0) * SR)
        attack, release = rng.uniform(0.3, 1.5), rng.uniform(0.5, 2.0)
        lo, hi = max(pos, 0), min(n, pos + seg + int(release * SR))
        if hi > lo:
            t = (np.arange(lo, hi) - pos) / SR
            env = np.clip(t / attack, 0, 1) * np.clip((seg / SR + release - t) / release, 0, 1)
            root = int(rng.integers(45, 64))
            for step in rng.choice([0, 3, 4, 7, 10, 11, 14], size=int(rng.integers(2, 5)), replace=False):
                hz = 440 * 2 ** ((root + step - 69) / 12)
                for cents in (-rng.uniform(3, 12), rng.uniform(3, 12)):
                    f = hz * 2 ** (cents / 1200)
                    for h in range(1, partials + 1):
                        if f * h < SR / 2 - 1000:
                            y[lo:hi] += env * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6)) / h**bright
        pos += seg
    return y


def _coloured(n: int, rng: np.random.Generator, slope: float) -> np.ndarray:
    """Noise with power falling as 1 / f**slope (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= f[1:] ** (slope / 2)
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / (np.std(x) + 1e-12)


def _smooth_random(n: int, rng: np.random.Generator, hz: float) -> np.ndarray:
    """A random curve in [0,1] varying no faster than `hz` (not periodic)."""
    knots = rng.random(int(n / SR * hz) + 3)
    return np.interp(np.arange(n) / SR * hz, np.arange(len(knots)), knots)


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """A noise bed (white to brown, band-limited), swelling slowly, or a riser sweeping open."""
    y = _coloured(n, rng, rng.uniform(0, 2))
    lo = rng.uniform(20, 500)
    hi = rng.uniform(max(lo * 4, 1500), SR / 2 - 500)
    y = signal.sosfilt(signal.butter(2, [lo, hi], btype="bandpass", fs=SR, output="sos"), y)
    if rng.random() < 0.4:  # a riser: the low-pass opens over most of the clip
        start = rng.uniform(0, 0.3) * n / SR
        end = start + rng.uniform(0.5, 1.0) * n / SR
        y = synth.lowpass_sweep(y, start, end, lo_hz=rng.uniform(200, 800), close=False)
    return y * (0.4 + 0.6 * _smooth_random(n, rng, rng.uniform(0.1, 0.5)))


def _crowd(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chatter and cheering: bands of noise, each swelling and fading at its own unmetered pace."""
    y = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        centre = rng.uniform(300, 3500)
        band = signal.butter(2, [centre / 1.5, min(centre * 1.5, SR / 2 - 500)], btype="bandpass", fs=SR, output="sos")
        y += signal.sosfilt(band, rng.normal(0, 1, n)) * _smooth_random(n, rng, rng.uniform(0.5, 3.0)) ** 2
    return y


# --- the dataset ----------------------------------------------------------------------------------


def _clip_arrays(args: tuple[int, str, int]) -> dict[str, Any]:
    seed, split, index = args
    clip = make_clip(seed, split, index)
    audio = clip.audio
    quantised = None
    if split == "heldout":  # the model's features from the very audio librosa will hear
        quantised = np.clip(np.round(audio * 32767), -32767, 32767).astype(np.int16)
        audio = quantised.astype(np.float32) / 32767.0
    beats = np.full(MAX_BEATS, np.nan)
    beats[: len(clip.beats)] = clip.beats
    mel = signal_features(audio).beat_mel.astype(np.float16)
    return {"mel": mel, "beats": beats, "audio": quantised, "row": clip.row}


def build(sizes: Sizes, seed: int, progress: Progress = no_progress,
          workers: int = 2) -> tuple[dict[str, np.ndarray], list[dict]]:
    items = [(seed, split, i) for split in SPLITS for i in range(getattr(sizes, split))]
    clips = store.parallel_map(_clip_arrays, items, len(items), "rendering beat clips", progress, workers)
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        part = [c for (_, s, _), c in zip(items, clips) if s == split]
        lengths = [len(c["mel"]) for c in part]
        arrays[f"{split}_mel"] = np.concatenate([c["mel"] for c in part]) if part else np.zeros((0, 84), np.float16)
        arrays[f"{split}_starts"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{split}_beats"] = np.stack([c["beats"] for c in part]) if part else np.zeros((0, MAX_BEATS))
        if split == "heldout":
            arrays["heldout_audio"] = np.concatenate([c["audio"] for c in part]) if part else np.zeros(0, np.int16)
            samples = np.cumsum([len(c["audio"]) for c in part])
            arrays["heldout_audio_starts"] = np.concatenate([[0], samples]).astype(np.int64)
    rows = [c["row"] for c in clips]
    return arrays, rows


def load_or_build(root: Path, sizes: Sizes, seed: int, progress: Progress = no_progress) -> store.StoredDataset:
    params = {"generator": "beats", "version": GENERATOR_VERSION, "seed": seed,
              "train": sizes.train, "val": sizes.val, "heldout": sizes.heldout, "train_s": TRAIN_S}
    return store.cached(root, "beats", params, lambda prog: build(sizes, seed, prog), progress)


def splits(stored: store.StoredDataset) -> dict[str, BeatSplit]:
    out = {}
    for split in SPLITS:
        rows = [r for r in stored.rows if r["split"] == split]
        beats = stored.arrays[f"{split}_beats"]
        a = stored.arrays
        out[split] = BeatSplit(
            mel=a[f"{split}_mel"],
            starts=a[f"{split}_starts"],
            beats=beats,
            has_beat=~np.isnan(beats[:, 0]) if len(beats) else np.zeros(0, bool),
            rows=rows,
            audio=a.get("heldout_audio") if split == "heldout" else None,
            audio_starts=a.get("heldout_audio_starts") if split == "heldout" else None,
        )
    return out
