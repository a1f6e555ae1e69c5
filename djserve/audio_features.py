"""The audio front end of `djserve.specs.features`: a mono 22050 Hz signal -> the model inputs.

The gateway (streaming an upload window by window) and training (generated clips) both call
`analyse_segment`, so the models learn from exactly the numbers they are served.

Frame convention: frame t is centred on sample t * HOP_LENGTH, with zeros before the start and
after the end (librosa's center=True, pad_mode="constant"). A signal of N samples has N // HOP_LENGTH
frames: librosa's 1 + N // HOP_LENGTH minus its last frame, the one centred at (or just before) the
end, which is mostly padding. A segment handed to `analyse_segment` starts CONTEXT_FRAMES frames
before its first frame, so a window cut from a long set sees its neighbours' samples as context.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from typing import NamedTuple, Sequence, Mapping

import librosa
import numpy as np

from djserve.specs.features import (
    BEAT_MELS,
    HOP_LENGTH,
    JUDGE_MELS,
    MIXING_FEATURES,
    MIXING_HOP_FRAMES,
    MIXING_RANGES,
    N_FFT,
    RHYTHM_CONTEXT_FRAMES,
    SAMPLE_RATE,
    TOP_DB,
)

# Frames of context before a window: librosa's onset strength at frame t is the rise from frame
# t-3 to t-2 (lag 1, then shifted by n_fft / (2 hop) to counter the centred frames' early view).
CONTEXT_FRAMES = 1 + N_FFT // (2 * HOP_LENGTH)
# Mel bands below ~300 Hz (of 128 up to 11 kHz): where kicks and bass are.
LOW_MEL_BANDS = 12
# So a segment covering frames t0-3 .. t0+n-1 starts this many samples before frame t0's centre.
LEAD_SAMPLES = CONTEXT_FRAMES * HOP_LENGTH + N_FFT // 2


class SegmentFeatures(NamedTuple):
    audio_features: np.ndarray  # float32 [1,128,T]: judge / technical
    beat_mel: np.ndarray  # float32 [T,84]: beat_tracker
    mixing_features: np.ndarray  # float32 [ceil(T/8),32]: judge / technical / creative
    onset_envelope: np.ndarray  # float32 [T], raw onset strength (tempo)


def segment_samples(n_frames: int) -> int:
    """Samples `analyse_segment` needs for n_frames frames (context included)."""
    return (CONTEXT_FRAMES + n_frames - 1) * HOP_LENGTH + N_FFT


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)


@lru_cache(maxsize=4)
def _band_masks(sr: int) -> np.ndarray:
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    bands = ((20, 250), (250, 4000), (4000, np.inf))
    return np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in bands]).astype(np.float32)


def _scaled_db(mel_power: np.ndarray) -> np.ndarray:
    # The contract's scaling, as training computes it: for digital silence ref=max gives 0 dB, so
    # silence maps to 1.0 there too.
    db = librosa.power_to_db(mel_power, ref=np.max, top_db=TOP_DB)
    return ((db + TOP_DB) / TOP_DB).astype(np.float32)


def _power(segment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segment as float32 and its power spectrogram [1+N_FFT/2, CONTEXT_FRAMES + T] (center=False)."""
    segment = np.ascontiguousarray(segment, dtype=np.float32)
    power = np.abs(librosa.stft(segment, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False))
    np.square(power, out=power)  # in place: memory per window is dominated by [1025, T] arrays
    return segment, power


def _beat_mel(power: np.ndarray, sr: int) -> np.ndarray:
    """float32 [T, BEAT_MELS] of a power spectrogram whose context frames are already cut off."""
    return np.ascontiguousarray(_scaled_db(_mel_basis(sr, BEAT_MELS) @ power).T)


def beat_segment(segment: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Only the beat tracker's input of `analyse_segment` (the same numbers, `beat_mel`), for the live
    path: the judge's mel bands, onsets and mixing descriptors are most of a window's cost."""
    _, power = _power(segment)
    beat = _beat_mel(power[:, CONTEXT_FRAMES:], sr)
    assert beat.shape[0] == n_frames
    return beat


def analyse_segment(segment: np.ndarray, n_frames: int, first: bool, sr: int = SAMPLE_RATE) -> SegmentFeatures:
    """Features of frames 0..n_frames-1 from `segment`, which frames (center=False) into CONTEXT_FRAMES
    context frames followed by those n_frames, i.e. holds (CONTEXT_FRAMES + n_frames - 1) * HOP + N_FFT
    samples."""
    segment, power = _power(segment)
    mel = _mel_basis(sr, JUDGE_MELS) @ power
    # librosa.onset.onset_strength(y) exactly (mean positive dB rise over 128 mel bands, lag 1,
    # shifted 2 frames later), except that top_db's floor is relative to this window's maximum.
    db = librosa.power_to_db(mel, ref=1.0, top_db=TOP_DB)
    rise = np.maximum(0.0, np.diff(db, axis=1))
    onset = rise.mean(axis=0)[:n_frames].astype(np.float32)
    low_onset = rise[:LOW_MEL_BANDS].mean(axis=0)[:n_frames].astype(np.float32)  # the kick region
    if first:
        onset[:CONTEXT_FRAMES] = 0.0  # librosa pads the envelope's start with zeros
        low_onset[:CONTEXT_FRAMES] = 0.0
    power, mel = power[:, CONTEXT_FRAMES:], mel[:, CONTEXT_FRAMES:]
    frames = librosa.util.frame(segment, frame_length=N_FFT, hop_length=HOP_LENGTH)[:, CONTEXT_FRAMES:]
    audio = _scaled_db(mel)[np.newaxis]
    beat = _beat_mel(power, sr)
    mixing = _mixing(frames, power, onset, low_onset, sr)
    assert audio.shape[-1] == beat.shape[0] == onset.shape[0] == n_frames
    return SegmentFeatures(audio, beat, mixing, onset)


def _step_mean(x: np.ndarray) -> np.ndarray:
    """Mean over consecutive groups of MIXING_HOP_FRAMES frames (last axis); the last may be short."""
    n = x.shape[-1]
    starts = np.arange(0, n, MIXING_HOP_FRAMES)
    counts = np.diff(np.append(starts, n))
    return np.add.reduceat(x, starts, axis=-1) / counts


def _delta(x: np.ndarray) -> np.ndarray:
    return np.diff(x, prepend=x[:1])  # the first step's change is 0


def _spectral_shape(mag: np.ndarray, power: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """librosa's spectral_centroid, _bandwidth (p=2) and _flatness of `mag`, as matrix products:
    librosa's own versions build several float64
    [1025, T] temporaries (~25 MB a window), the bulk of a stream's memory."""
    freq = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    total = mag.sum(axis=0, dtype=np.float64)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > np.finfo(np.float32).tiny)
    centroid = (freq @ mag) * weight
    spread = (freq**2 @ mag) * weight - centroid**2  # E[f^2] - E[f]^2 = E[(f - centroid)^2]
    floored = np.maximum(power, 1e-10)  # librosa's amin on S**2
    arithmetic = floored.mean(axis=0, dtype=np.float64)
    geometric = np.exp(np.log(floored, out=floored).mean(axis=0, dtype=np.float64))
    return {
        "spectral_centroid": centroid,
        "spectral_bandwidth": np.sqrt(np.maximum(spread, 0.0)),
        "spectral_flatness": geometric / arithmetic,
    }


def _rhythm(onset: np.ndarray, low_onset: np.ndarray, n_steps: int) -> dict[str, np.ndarray]:
    """Per step, from the onset envelopes in RHYTHM_CONTEXT_FRAMES around it: pulse clarity (the
    normalised autocorrelation's peak at 60-200 BPM lags), that lag as a tempo, and the flam ratio
    (the strongest low-band onset 2-6 frames after each strong kick, relative to it)."""
    fps = SAMPLE_RATE / HOP_LENGTH
    lag_lo, lag_hi = int(fps * 60 / 200), int(np.ceil(fps * 60 / 60))
    half = RHYTHM_CONTEXT_FRAMES // 2
    n = len(onset)
    clarity, tempo, flam = np.zeros(n_steps), np.zeros(n_steps), np.zeros(n_steps)
    for k in range(n_steps):
        c = k * MIXING_HOP_FRAMES + MIXING_HOP_FRAMES // 2
        a, b = max(0, c - half), min(n, c + half)
        w = onset[a:b].astype(np.float64)
        if len(w) > lag_lo + 2 and w.std() > 1e-6:
            w = w - w.mean()
            ac = np.correlate(w, w, "full")[len(w) - 1 :]
            ac /= ac[0]
            seg = ac[lag_lo : min(lag_hi, len(ac))]
            best = int(np.argmax(seg))
            clarity[k], tempo[k] = max(0.0, seg[best]), 60.0 * fps / (lag_lo + best)
        low = low_onset[a:b].astype(np.float64)
        if len(low) > 8 and low.max() > 1e-6:
            strong = np.flatnonzero((low > 0.5 * low.max()) & (low >= np.roll(low, 1)) & (low >= np.roll(low, -1)))
            ratios = [low[i + 2 : i + 7].max() / low[i] for i in strong if i + 7 <= len(low)]
            flam[k] = float(np.mean(ratios)) if ratios else 0.0
    return {"pulse_clarity": clarity, "local_tempo": tempo, "beat_flam": flam}


def _tuning(power: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Per frame, the circular mean of a 36-bin chroma's energy over the three bins of each
    semitone: its angle is where the partials sit between semitones (cents), its length how
    consistently (two tracks tuned apart spread it)."""
    chroma36 = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0, n_chroma=36, norm=None)
    phase = np.exp(2j * np.pi * (np.arange(36) % 3) / 3)[:, np.newaxis]
    z = (chroma36 * phase).sum(axis=0) / np.maximum(chroma36.sum(axis=0), 1e-12)
    return {"tuning_offset": np.angle(z) / (2 * np.pi) * 100.0, "tuning_coherence": np.abs(z)}


def _mixing(frames: np.ndarray, power: np.ndarray, onset: np.ndarray, low_onset: np.ndarray, sr: int) -> np.ndarray:
    """[ceil(T/8), 32] scaled descriptors from time frames [N_FFT,T], power [1+N_FFT/2,T], onsets [T]."""
    mag = np.sqrt(power)
    rms = np.sqrt(np.einsum("ij,ij->j", frames, frames) / N_FFT)
    per_frame = {"onset_strength": onset, "low_onset_strength": low_onset}
    per_frame.update(_spectral_shape(mag, power, sr))
    per_frame.update(_tuning(power, sr))
    # tuning=0: estimating it per window would be slow and make windows of one set disagree.
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=N_FFT, n_bands=3)
    steps = {name: _step_mean(np.asarray(v, np.float64)) for name, v in per_frame.items()}
    # Level from the step's mean power, in dB: a jump of 6 dB reads the same at any volume.
    steps["loudness"] = 10 * np.log10(np.maximum(_step_mean(rms.astype(np.float64) ** 2), 1e-10))
    for name in ("loudness", "spectral_centroid"):
        steps[f"{name}_delta"] = _delta(steps[name])
    steps.update(_rhythm(onset, low_onset, len(steps["loudness"])))
    # Band shares of a step's summed power, so a step with a few silent frames still sums to 1.
    bands = _step_mean((_band_masks(sr) @ power).astype(np.float64))
    total = bands.sum(axis=0)
    shares = np.divide(bands, total, out=np.zeros_like(bands), where=total > 0)
    steps.update(bass_energy=shares[0], mid_energy=shares[1], treble_energy=shares[2])
    first_chroma = MIXING_FEATURES.index("chroma_c")
    for i, row in enumerate(_step_mean(chroma.astype(np.float64))):
        steps[MIXING_FEATURES[first_chroma + i]] = row
    for i, row in enumerate(_step_mean(contrast.astype(np.float64))):
        steps[f"spectral_contrast_{i}"] = row
    raw = np.stack([steps[name] for name in MIXING_FEATURES], axis=1)
    return _scale_mixing(raw)


_LO = np.array([MIXING_RANGES[n][0] for n in MIXING_FEATURES])
_HI = np.array([MIXING_RANGES[n][1] for n in MIXING_FEATURES])


def _scale_mixing(raw: np.ndarray) -> np.ndarray:
    scaled = np.clip((np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0) - _LO) / (_HI - _LO), 0.0, 1.0)
    return scaled.astype(np.float32)


def signal_features(y: np.ndarray) -> SegmentFeatures:
    """Every feature of a whole mono 22050 Hz signal analysed as one window, T = len(y) // HOP.

    The same numbers the gateway computes for an upload of this signal that fits in one window
    (at most WINDOW_FRAMES + MIN_WINDOW_FRAMES - 1 frames): training clips go through here."""
    y = np.asarray(y, dtype=np.float32).ravel()
    n_frames = len(y) // HOP_LENGTH
    if n_frames == 0:
        raise ValueError(f"a signal of {len(y)} samples has no frame (hop {HOP_LENGTH})")
    segment = np.pad(y, (LEAD_SAMPLES, N_FFT))[: segment_samples(n_frames)]
    return analyse_segment(segment, n_frames, first=True)


def mixing_features(y: np.ndarray) -> np.ndarray:
    """The 32 MIXING_FEATURES of a mono 22050 Hz signal, float32 [ceil(T/8), 32] in [0,1]."""
    y = np.asarray(y, dtype=np.float32).ravel()
    if len(y) // HOP_LENGTH == 0:
        return np.zeros((0, len(MIXING_FEATURES)), np.float32)
    return signal_features(y).mixing_features


_WORD = re.compile(r"\w+")


def metadata_tokens(
    tracks: Sequence[object], vocab_size: int = 10_000, max_tokens: int = 256
) -> np.ndarray:
    """int64 [L] ids in 1..vocab_size-1 of the lower-cased words of each track's title, artist and
    genre (CRC-32, stable across processes); no words at all -> [0], the one padding token."""
    ids: list[int] = []
    for track in tracks:
        for field in ("title", "artist", "genre"):
            text = track.get(field, "") if isinstance(track, Mapping) else getattr(track, field, "")
            for word in _WORD.findall(str(text or "").lower()):
                ids.append(1 + zlib.crc32(word.encode("utf-8")) % (vocab_size - 1))
    return np.array(ids[:max_tokens] or [0], dtype=np.int64)
