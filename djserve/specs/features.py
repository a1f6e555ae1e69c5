"""The audio front end: how a DJ set becomes the judge's, technical's, creative's and beat
tracker's input tensors. The gateway computes exactly this; models are trained on exactly this.

Decisions (the design documents leave hop, n_fft, frame count and the 32 mixing features open):
- One rate for everything: mono at SAMPLE_RATE = 22050 Hz (librosa's default; 44.1 kHz input is
  resampled), hop HOP_LENGTH = 512, n_fft N_FFT = 2048. A window of WINDOW_FRAMES = 1024 frames
  is 23.8 s, the judge's nominal [1,128,1024] input.
- Mel spectrograms in dB (power_to_db, ref=max, top_db=80) scaled to [0,1] by (dB + 80) / 80.
- Mixing features: one step every MIXING_HOP_FRAMES = 8 frames (0.19 s, 128 steps a window), the
  32 descriptors in MIXING_FEATURES, each min-max scaled to [0,1] by MIXING_RANGES. Besides level,
  timbre and harmony they describe what mixing quality is heard in: how periodic the onsets are,
  at what tempo, whether kicks double (flams), and where partials sit between semitones.
- A set longer than a window is cut into consecutive windows (the last one shorter, if at least
  MIN_WINDOW_FRAMES long, else merged into the one before); window scores are averaged.
"""

from __future__ import annotations

SAMPLE_RATE = 22_050
HOP_LENGTH = 512
N_FFT = 2048
JUDGE_MELS = 128
BEAT_MELS = 84
TOP_DB = 80.0
WINDOW_FRAMES = 1024
MIN_WINDOW_FRAMES = 64
MIXING_HOP_FRAMES = 8

#: The 32 mixing descriptors per step, in tensor order: what a judge listens to in a mix.
MIXING_FEATURES: tuple[str, ...] = (
    "loudness",  # RMS level in dB
    "loudness_delta",  # level change since the previous step, dB (fades, drops, level jumps)
    "spectral_centroid",
    "spectral_centroid_delta",  # brightness change (filter sweeps)
    "spectral_bandwidth",
    "spectral_flatness",
    "onset_strength",
    "low_onset_strength",  # onsets below ~300 Hz: the kicks
    "pulse_clarity",  # how periodic the onsets are around the step (two tempos blur it)
    "local_tempo",  # the onsets' period around the step, as BPM
    "beat_flam",  # second kicks 45-140 ms after a kick: beats out of phase
    "tuning_offset",  # where the partials sit between semitones, cents (a track off its key, a wobble)
    "tuning_coherence",  # 1: one tuning; lower: partials at two tunings (detuned blends)
    "bass_energy",  # 20-250 Hz share (the design documents' bands)
    "mid_energy",  # 250-4000 Hz share
    "treble_energy",  # 4000+ Hz share
    *(f"chroma_{p}" for p in ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")),
    *(f"spectral_contrast_{i}" for i in range(4)),
)
assert len(MIXING_FEATURES) == 32

#: Context around a step for the rhythm descriptors (pulse clarity, tempo, flams): ~2.2 s.
RHYTHM_CONTEXT_FRAMES = 96

#: (lo, hi) used to scale each raw descriptor to [0,1] (values outside are clipped).
MIXING_RANGES: dict[str, tuple[float, float]] = {
    "loudness": (-60.0, 0.0),
    "loudness_delta": (-12.0, 12.0),
    "spectral_centroid": (0.0, SAMPLE_RATE / 2),
    "spectral_centroid_delta": (-2000.0, 2000.0),
    "spectral_bandwidth": (0.0, SAMPLE_RATE / 2),
    "spectral_flatness": (0.0, 1.0),
    "onset_strength": (0.0, 20.0),
    "low_onset_strength": (0.0, 20.0),
    "pulse_clarity": (0.0, 1.0),
    "local_tempo": (60.0, 200.0),
    "beat_flam": (0.0, 1.0),
    "tuning_offset": (-50.0, 50.0),
    "tuning_coherence": (0.0, 0.25),
    "bass_energy": (0.0, 1.0),
    "mid_energy": (0.0, 1.0),
    "treble_energy": (0.0, 1.0),
    **{f"chroma_{p}": (0.0, 1.0) for p in ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")},
    **{f"spectral_contrast_{i}": (0.0, 60.0) for i in range(4)},
}
