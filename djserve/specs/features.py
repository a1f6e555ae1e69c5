"""The audio front end: how a DJ set becomes the judge's, technical's, creative's and beat
tracker's input tensors. The gateway computes exactly this; models are trained on exactly this.

Decisions (EXTRACT 2.1/2.2 leave hop, n_fft, frame count and the 32 mixing features open):
- One rate for everything: mono at SAMPLE_RATE = 22050 Hz (librosa's default; 44.1 kHz input is
  resampled), hop HOP_LENGTH = 512, n_fft N_FFT = 2048. A window of WINDOW_FRAMES = 1024 frames
  is 23.8 s, the judge's nominal [1,128,1024] input (S0:858).
- Mel spectrograms in dB (power_to_db, ref=max, top_db=80) scaled to [0,1] by (dB + 80) / 80.
- Mixing features: one step every MIXING_HOP_FRAMES = 8 frames (0.19 s, 128 steps a window), the
  32 descriptors in MIXING_FEATURES, each min-max scaled to [0,1] by MIXING_RANGES.
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

#: The 32 mixing descriptors per step, in tensor order.
MIXING_FEATURES: tuple[str, ...] = (
    "rms",  # loudness
    "rms_delta",  # loudness change since the previous step (fades, drops)
    "spectral_centroid",
    "spectral_centroid_delta",  # brightness change (filter sweeps)
    "spectral_bandwidth",
    "spectral_rolloff",
    "spectral_flatness",
    "zero_crossing_rate",
    "onset_strength",
    "onset_strength_delta",
    "bass_energy",  # 20-250 Hz share (S0:747-779 bands)
    "mid_energy",  # 250-4000 Hz share
    "treble_energy",  # 4000+ Hz share
    *(f"chroma_{p}" for p in ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")),
    *(f"spectral_contrast_{i}" for i in range(7)),
)
assert len(MIXING_FEATURES) == 32

#: (lo, hi) used to scale each raw descriptor to [0,1] (values outside are clipped).
MIXING_RANGES: dict[str, tuple[float, float]] = {
    "rms": (0.0, 0.5),
    "rms_delta": (-0.1, 0.1),
    "spectral_centroid": (0.0, SAMPLE_RATE / 2),
    "spectral_centroid_delta": (-2000.0, 2000.0),
    "spectral_bandwidth": (0.0, SAMPLE_RATE / 2),
    "spectral_rolloff": (0.0, SAMPLE_RATE / 2),
    "spectral_flatness": (0.0, 1.0),
    "zero_crossing_rate": (0.0, 0.5),
    "onset_strength": (0.0, 20.0),
    "onset_strength_delta": (-10.0, 10.0),
    "bass_energy": (0.0, 1.0),
    "mid_energy": (0.0, 1.0),
    "treble_energy": (0.0, 1.0),
    **{f"chroma_{p}": (0.0, 1.0) for p in ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")},
    **{f"spectral_contrast_{i}": (0.0, 60.0) for i in range(7)},
}
