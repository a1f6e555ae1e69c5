"""Procedural dance tracks: drums, bass, chords or pads, an arpeggio, in a key, at a tempo, with
exact beat times.

Every track draws its own sounds (kick pitch and decay, snare tone and noise colour, hat length,
bass waveform and filter, chord voicing and timbre, swing, ghost notes), and the mix adds room
tone, hum, crowd noise, EQ tilt, band limits and saturation, so a model has to learn rhythm,
harmony and level from the music rather than one synthesiser's fingerprint. Genres differ by
tempo range, drum pattern and palette.

A track renders as two stems, `low` (kick + bass) and `high` (everything else), so a mix can swap
basses the way a DJ's EQ does. Pitched parts follow a detune curve in cents (pitch instability);
drums do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from djserve.specs.features import SAMPLE_RATE
from djserve.specs.labels import Detune, Key

SR = SAMPLE_RATE


@dataclass(frozen=True)
class Style:
    tempo: tuple[float, float]
    kicks: tuple[float, ...]
    """Kick positions in beats within a 4-beat bar."""
    snares: tuple[float, ...]
    hats: tuple[float, ...]
    bass_steps: tuple[float, ...]
    """Bass note onsets in beats within a bar."""
    pad: bool = True
    arp: bool = False
    wobble: bool = False


_FOUR = (0.0, 1.0, 2.0, 3.0)
_OFF = (0.5, 1.5, 2.5, 3.5)
_SIXTEENTHS = tuple(i / 4 for i in range(16))
_EIGHTHS = tuple(i / 2 for i in range(8))

STYLES: dict[str, Style] = {
    "house": Style((120, 130), _FOUR, (1.0, 3.0), _OFF, (0.5, 1.5, 2.5, 3.5)),
    "deep_house": Style((118, 124), _FOUR, (1.0, 3.0), _OFF, (0.0, 0.75, 2.0, 2.75)),
    "tech_house": Style((124, 128), _FOUR, (1.0, 3.0), _SIXTEENTHS, (0.5, 1.25, 2.5, 3.25)),
    "progressive": Style((122, 128), _FOUR, (1.0, 3.0), _OFF, _EIGHTHS, arp=True),
    "techno": Style((128, 140), _FOUR, (), _SIXTEENTHS, (0.25, 0.5, 1.25, 1.5, 2.25, 2.5, 3.25, 3.5), pad=False),
    "hard_techno": Style((140, 160), _FOUR, (1.0, 3.0), _EIGHTHS, (0.5, 1.5, 2.5, 3.5), pad=False),
    "trance": Style((128, 140), _FOUR, (1.0, 3.0), _OFF, _OFF, arp=True),
    "dubstep": Style((138, 142), (0.0, 2.75), (2.0,), _EIGHTHS, (0.0, 2.75), wobble=True),
    "drum_and_bass": Style((170, 178), (0.0, 1.5), (1.0, 3.0), _EIGHTHS, (0.0, 1.5, 2.5)),
    "breakbeat": Style((125, 140), (0.0, 1.75, 2.5), (1.0, 3.0), _EIGHTHS, (0.0, 1.75, 2.5)),
    "hip_hop": Style((80, 100), (0.0, 1.75, 2.5), (1.0, 3.0), _EIGHTHS, (0.0, 1.75, 2.5)),
}
GENRES = tuple(STYLES)

_MINOR = (0, 2, 3, 5, 7, 8, 10)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 4, 5, 3), (0, 0, 3, 4))


@dataclass(frozen=True)
class TrackDesign:
    """One track's sounds and arrangement, drawn once; rendering it is deterministic."""

    genre: str
    key: Key
    intensity: float
    seed: int
    kick_on: bool
    hats_on: bool
    pad_on: bool
    arp_on: bool
    swing: float


def draw_track(genre: str, key: Key, intensity: float, rng: np.random.Generator) -> TrackDesign:
    style = STYLES[genre]
    return TrackDesign(
        genre=genre,
        key=key,
        intensity=float(intensity),
        seed=int(rng.integers(2**31)),
        kick_on=intensity > 0.2 or rng.random() < 0.5,
        hats_on=intensity > 0.35 or rng.random() < 0.3,
        pad_on=style.pad or intensity < 0.5 or rng.random() < 0.3,
        arp_on=style.arp or (intensity > 0.6 and rng.random() < 0.3),
        swing=float(rng.choice([0.0, 0.0, rng.uniform(0.02, 0.12)])) if genre in ("hip_hop", "deep_house", "breakbeat") else 0.0,
    )


def tempo_range(genre: str) -> tuple[float, float]:
    return STYLES[genre].tempo


# --- sounds ---------------------------------------------------------------------------------------


def _env(n: int, decay_s: float, attack_s: float = 0.0) -> np.ndarray:
    t = np.arange(n) / SR
    env = np.exp(-t / max(decay_s, 1e-3))
    if attack_s > 0:
        env *= np.clip(t / attack_s, 0, 1)
    return env


def _kick(rng: np.random.Generator) -> np.ndarray:
    n = int(SR * rng.uniform(0.25, 0.5))
    t = np.arange(n) / SR
    f_end, f_start = rng.uniform(40, 65), rng.uniform(100, 260)
    freq = f_end + (f_start - f_end) * np.exp(-t / rng.uniform(0.015, 0.05))
    body = np.sin(2 * np.pi * np.cumsum(freq) / SR) * _env(n, rng.uniform(0.08, 0.35))
    click = rng.normal(0, 1, n) * _env(n, 0.003) * rng.uniform(0.05, 0.4)
    return np.tanh(rng.uniform(1, 3) * (body + click)) / np.tanh(1)


def _noise_hit(rng: np.random.Generator, decay_s: float, band: tuple[float, float], length_s: float) -> np.ndarray:
    n = int(SR * length_s)
    lo, hi = band
    sos = signal.butter(2, [lo, min(hi, SR / 2 - 100)], btype="bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, rng.normal(0, 1, n)) * _env(n, decay_s)


def _snare(rng: np.random.Generator, clap: bool) -> np.ndarray:
    n = int(SR * 0.3)
    if clap:
        hit = np.zeros(n)
        for k, delay in enumerate((0.0, 0.011, 0.022)):
            part = _noise_hit(rng, 0.012 if k < 2 else rng.uniform(0.06, 0.15), (900, 6000), 0.3)
            i = int(delay * SR)
            hit[i:] += part[: n - i]
        return hit / np.max(np.abs(hit))
    tone = np.sin(2 * np.pi * rng.uniform(150, 260) * np.arange(n) / SR) * _env(n, rng.uniform(0.03, 0.08))
    noise = _noise_hit(rng, rng.uniform(0.05, 0.18), (rng.uniform(800, 2500), rng.uniform(6000, 10000)), 0.3)
    hit = tone * rng.uniform(0.3, 0.8) + noise / (np.max(np.abs(noise)) + 1e-9)
    return hit / np.max(np.abs(hit))


def _hat(rng: np.random.Generator, open_: bool) -> np.ndarray:
    decay = rng.uniform(0.12, 0.3) if open_ else rng.uniform(0.015, 0.05)
    hit = _noise_hit(rng, decay, (rng.uniform(5000, 8000), 10_800), 0.4 if open_ else 0.1)
    return hit / (np.max(np.abs(hit)) + 1e-9)


_TABLE = 4096


@lru_cache(maxsize=64)
def _wavetable(shape: str, harmonics: int) -> np.ndarray:
    """One period of a band-limited waveform (no aliasing fingerprint), `harmonics` partials."""
    phase = 2 * np.pi * np.arange(_TABLE + 1) / _TABLE
    if shape == "sine":
        return np.sin(phase)
    if shape == "square":
        return sum(np.sin(h * phase) / h for h in range(1, harmonics + 1, 2)) * 4 / np.pi * 0.8
    if shape == "triangle":
        return sum((-1) ** ((h - 1) // 2) * np.sin(h * phase) / h**2 for h in range(1, harmonics + 1, 2)) * 8 / np.pi**2
    return sum(np.sin(h * phase) / h for h in range(1, harmonics + 1)) * 0.6  # saw


def _osc(freq: np.ndarray, shape: str, rng: np.random.Generator) -> np.ndarray:
    """An oscillator following an instantaneous frequency curve (Hz per sample), read from a
    wavetable with as many partials as fit under Nyquist."""
    top = float(np.max(freq)) if len(freq) else 1.0
    table = _wavetable(shape, int(max(1, min(24, (SR / 2) // top))))
    cycles = np.cumsum(freq) / SR + rng.uniform(0, 1)
    pos = (cycles % 1.0) * _TABLE
    i = pos.astype(np.int64)
    frac = pos - i
    return table[i] * (1 - frac) + table[i + 1] * frac


def _lowpass(x: np.ndarray, cutoff: float, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, SR / 2 - 200), fs=SR, output="sos")
    return signal.sosfilt(sos, x)


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


# --- rendering ------------------------------------------------------------------------------------


@dataclass
class Stems:
    low: np.ndarray
    high: np.ndarray

    @property
    def mix(self) -> np.ndarray:
        return self.low + self.high


def render_track(design: TrackDesign, bpm: float, first_beat_s: float, duration_s: float, detune: Detune) -> Stems:
    """The track at `bpm` with a beat on `first_beat_s` (the grid extends before it), `duration_s`
    long. Beats fall exactly on first_beat_s + k * 60 / bpm."""
    rng = np.random.default_rng(design.seed)
    style = STYLES[design.genre]
    n = int(duration_s * SR)
    beat = 60.0 / bpm
    low, high = np.zeros(n), np.zeros(n)
    t_all = np.arange(n) / SR
    ratio = 2 ** (detune.at(t_all) / 1200)  # pitch multiplier per sample

    # The bar's downbeat is some beat of the grid; the clip may start mid-bar.
    bar_offset = int(rng.integers(4))
    k0 = int(np.floor(-first_beat_s / beat)) - 1
    k1 = int(np.ceil((duration_s - first_beat_s) / beat)) + 1
    beats = [(first_beat_s + k * beat, (k + bar_offset) % 4, (k + bar_offset) // 4) for k in range(k0, k1)]

    def place(dst: np.ndarray, sample: np.ndarray, at_s: float, gain: float) -> None:
        i = int(round(at_s * SR))
        if i >= n or i + len(sample) <= 0:
            return
        s0 = max(0, -i)
        j = min(n, i + len(sample))
        dst[max(i, 0) : j] += gain * sample[s0 : s0 + j - max(i, 0)]

    intensity = design.intensity
    kick, snare, hat, open_hat = _kick(rng), _snare(rng, clap=rng.random() < 0.5), _hat(rng, False), _hat(rng, True)
    swing = design.swing * beat
    ghost = rng.random() < 0.4
    kicks_muted_bar = int(rng.integers(-8, 8))  # one bar without kick now and then (a small break)
    for t_beat, pos, bar in beats:
        for k in style.kicks:
            if int(k) == pos and design.kick_on and bar != kicks_muted_bar:
                place(low, kick, t_beat + (k - int(k)) * beat, 0.9)
        for s in style.snares:
            if int(s) == pos and intensity > 0.25:
                place(high, snare, t_beat + (s - int(s)) * beat, 0.35 + 0.3 * intensity)
        if ghost and pos == 3:
            place(high, snare, t_beat + 0.75 * beat, 0.08)
        if design.hats_on:
            for h in style.hats:
                if int(h) == pos:
                    frac = h - int(h)
                    at = t_beat + frac * beat + (swing if abs(frac - 0.5) < 1e-6 or abs(frac - 0.75) < 1e-6 else 0)
                    is_open = frac == 0.5 and intensity > 0.6 and style.hats == _OFF
                    place(high, open_hat if is_open else hat, at, (0.12 + 0.15 * intensity) * (1.0 if frac == 0.5 else 0.7))

    # Harmony: a progression in the key, one chord per bar.
    scale = _MINOR if design.key.minor else _MAJOR
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    root_midi = 36 + design.key.tonic  # C2.. B2
    bass_shape = str(rng.choice(["saw", "square", "sine", "triangle"]))
    bass_cut = rng.uniform(250, 1200)
    pad_shape = str(rng.choice(["saw", "triangle", "sine"]))
    pad_cut = rng.uniform(1500, 6000) * (0.6 + 0.6 * intensity)
    voicing = int(rng.integers(3, 5))
    bass_len = rng.uniform(0.25, 0.9)
    bars = sorted({bar for _, _, bar in beats})
    bar_start = {bar: min(t for t, _, b in beats if b == bar) - (min(p for _, p, b in beats if b == bar)) * beat for bar in bars}
    bass = np.zeros(n)
    pad = np.zeros(n)
    arp = np.zeros(n)
    for bar in bars:
        degree = prog[bar % 4]
        chord = [scale[(degree + 2 * v) % 7] + 12 * ((degree + 2 * v) // 7) for v in range(voicing)]
        t0 = bar_start[bar]
        for step in style.bass_steps:
            note = root_midi + scale[degree % 7] + (12 if rng.random() < 0.15 else 0)
            _note(bass, t0 + step * beat, beat * bass_len * (2 if style.wobble else 1), _midi_hz(note), bass_shape, ratio, rng,
                  decay=beat * 0.8, wobble=beat / 2 if style.wobble else 0.0)
        if design.pad_on:
            for pitch in chord:
                _note(pad, t0, 4 * beat, _midi_hz(root_midi + 24 + pitch), pad_shape, ratio, rng, decay=8 * beat, attack=0.3 * beat)
        if design.arp_on:
            for i in range(16):
                pitch = chord[i % len(chord)] + 12 * (i // len(chord) % 2)
                _note(arp, t0 + i * beat / 4, beat / 5, _midi_hz(root_midi + 36 + pitch), "saw", ratio, rng, decay=beat / 8)
    low += _lowpass(bass, bass_cut) * (0.35 + 0.2 * intensity)
    if design.pad_on:
        pad = _lowpass(pad, pad_cut) / max(voicing, 1)
        pump = 1.0 - 0.5 * np.exp(-((t_all - first_beat_s) % beat) / (0.12 * beat)) if rng.random() < 0.5 else 1.0
        high += pad * pump * (0.25 + 0.1 * (1 - intensity))
    if design.arp_on:
        high += _lowpass(arp, rng.uniform(2500, 8000)) * 0.12 * (0.5 + intensity)
    return Stems(low, high)


def _note(dst, at_s, length_s, hz, shape, ratio, rng, decay, attack=0.005, wobble=0.0) -> None:
    n = len(dst)
    i = int(round(at_s * SR))
    m = int(length_s * SR)
    lo, hi = max(i, 0), min(i + m, n)
    if hi <= lo:
        return
    seg = ratio[lo:hi] * hz
    tone = _osc(seg, shape, rng)
    t = (np.arange(lo, hi) - i) / SR
    env = np.exp(-t / decay) * np.clip(t / attack, 0, 1) * np.clip((length_s - t) / 0.01, 0, 1)
    if wobble:
        env *= 0.55 + 0.45 * np.cos(2 * np.pi * t / wobble)
    dst[lo:hi] += tone * env


# --- room and master ------------------------------------------------------------------------------


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n)
    return x / (np.std(x) + 1e-12)


def master(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the room, the recording chain and the mastering do to a mix: noise floor, hum, crowd,
    EQ tilt, a band limit, saturation and a random level."""
    n = len(y)
    out = y.copy()
    if rng.random() < 0.6:
        out += _pink(n, rng) * 10 ** (rng.uniform(-60, -32) / 20)
    if rng.random() < 0.2:
        t = np.arange(n) / SR
        out += 10 ** (rng.uniform(-55, -40) / 20) * np.sin(2 * np.pi * rng.choice([50, 60]) * t)
    if rng.random() < 0.3:  # crowd: band-passed noise swelling slowly
        crowd = _noise_hit(rng, 1e9, (300, 3000), (n + 0.5) / SR)[:n]  # exactly n samples whatever the rounding
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / SR + rng.uniform(0, 6))
        out += crowd / (np.std(crowd) + 1e-12) * swell * 10 ** (rng.uniform(-40, -24) / 20)
    tilt = rng.uniform(-6, 6)
    if abs(tilt) > 1:
        low = _lowpass(out, 300)
        out = out + (10 ** (tilt / 20) - 1) * low
    if rng.random() < 0.4:
        out = _lowpass(out, rng.uniform(6000, 10_500), order=4)
    if rng.random() < 0.4:
        sos = signal.butter(2, rng.uniform(25, 60), btype="highpass", fs=SR, output="sos")
        out = signal.sosfilt(sos, out)
    peak = np.max(np.abs(out)) + 1e-9
    out = out / peak * 10 ** (rng.uniform(-12, -1) / 20)
    if rng.random() < 0.3:
        drive = rng.uniform(1.2, 2.5)
        out = np.tanh(drive * out) / np.tanh(drive)
    return out.astype(np.float32)


@lru_cache(maxsize=512)
def _sweep_sos(step: int) -> np.ndarray:
    """A 2nd-order low-pass at 2**(step / 24) Hz (quarter-tone steps: cached, inaudible steps)."""
    return signal.butter(2, min(2 ** (step / 24), SR / 2 - 200), fs=SR, output="sos")


def lowpass_sweep(x: np.ndarray, start_s: float, end_s: float, lo_hz: float = 250.0, close: bool = True) -> np.ndarray:
    """A filter sweep: the cutoff glides (log scale) from open to lo_hz between start and end
    (close=True), or from lo_hz to open (close=False); processed in blocks with the filter state
    carried over, so the glide has no clicks."""
    out = x.copy()
    a, b = int(start_s * SR), int(end_s * SR)
    a, b = max(a, 0), min(b, len(x))
    if b <= a:
        return out
    block = 512
    hi_hz = SR / 2 - 500
    zi = None
    tail_cut = lo_hz if close else hi_hz
    for s in range(a, len(x), block):
        e = min(s + block, len(x))
        frac = min(1.0, (s - a) / max(b - a, 1))
        if not close:
            frac = 1 - frac
        cutoff = tail_cut if s >= b else float(np.exp(np.log(hi_hz) + frac * (np.log(lo_hz) - np.log(hi_hz))))
        sos = _sweep_sos(round(float(np.log2(cutoff)) * 24))
        if zi is None:
            zi = signal.sosfilt_zi(sos) * x[s]
        out[s:e], zi = signal.sosfilt(sos, x[s:e], zi=zi)
        if not close and s >= b:
            out[e:] = x[e:]
            break
    return out
