"""The gateway's audio front end: uploaded bytes -> the model input tensors of
`djserve.specs.features`, streamed window by window so memory stays bounded for a 90-minute set.

Frame convention: frame t is centred on sample t * HOP_LENGTH of the 22050 Hz mono signal, with
zeros before the start and after the end (librosa's center=True, pad_mode="constant"). A signal of
N samples has N // HOP_LENGTH frames: librosa's 1 + N // HOP_LENGTH minus its last frame, the one
centred at (or just before) the end, which is mostly padding. So 1024 * 512 samples give exactly
1024 frames, and every window's frames equal those of librosa run on the whole set (each window is
analysed with its neighbours' samples as context, not with fresh padding at its edges).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Mapping, Sequence

import librosa
import numpy as np
import soundfile as sf
import soxr

from djserve.specs.features import (
    BEAT_MELS,
    HOP_LENGTH,
    JUDGE_MELS,
    MIN_WINDOW_FRAMES,
    MIXING_FEATURES,
    MIXING_HOP_FRAMES,
    MIXING_RANGES,
    N_FFT,
    SAMPLE_RATE,
    TOP_DB,
    WINDOW_FRAMES,
)

SUPPORTED_FORMATS = ("wav", "flac", "ogg", "mp3")

# Source frames read per block (~1.5 s at 44.1 kHz).
_BLOCK_FRAMES = 1 << 16
# Frames of context before a window: librosa's onset strength at frame t is the rise from frame
# t-3 to t-2 (lag 1, then shifted by n_fft / (2 hop) to counter the centred frames' early view).
_CONTEXT = 1 + N_FFT // (2 * HOP_LENGTH)
# So a segment covering frames t0-3 .. t0+n-1 starts this many samples before frame t0's centre.
_LEAD = _CONTEXT * HOP_LENGTH + N_FFT // 2


class AudioError(Exception):
    """A request's audio cannot be analysed; `code` is machine-readable, `message` for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int = 200 * 2**20
    max_seconds: float = 90 * 60
    min_seconds: float = 2.0


@dataclass
class Window:
    index: int
    start_s: float
    audio_features: np.ndarray  # float32 [1,128,T]
    beat_mel: np.ndarray  # float32 [T,84]
    mixing_features: np.ndarray  # float32 [S,32], S = ceil(T/8)
    onset_envelope: np.ndarray  # float32 [T], raw onset strength (for tempo)


# --- format sniffing and integrity --------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    """The container from magic bytes: 'wav' | 'flac' | 'ogg' | 'mp3', else None."""
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) >= 3 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:
        # MPEG audio frame header: version 01 and layer 00 are reserved; layer 00 is also what an
        # AAC ADTS stream (same 0xFFF sync) has, so this excludes AAC. Bitrate 1111 / rate 11: bad.
        version, layer = (data[1] >> 3) & 0b11, (data[1] >> 1) & 0b11
        bitrate, rate = data[2] >> 4, (data[2] >> 2) & 0b11
        if version != 0b01 and layer != 0b00 and bitrate != 0b1111 and rate != 0b11:
            return "mp3"
    return None


def _truncation(fmt: str, data: bytes) -> str | None:
    """Why the file is visibly cut short, from its structure alone; None if it looks whole.

    libsndfile does not fail on every truncated file: for WAV it shortens the header's frame count
    to the bytes present, for Ogg it reads to the last complete page. FLAC fails on its own and an
    MP3 with a Xing/Info frame count shows up as a decoded length shorter than the header's.
    """
    if fmt == "wav" and data[:4] == b"RIFF":
        pos = 12
        while pos + 8 <= len(data):
            chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
            if chunk == b"data":
                # 0 and 0xFFFFFFFF: written by streaming encoders that did not know the size.
                if 0 < size < 0xFFFFFFFF and pos + 8 + size > len(data):
                    return f"WAV data chunk holds {len(data) - pos - 8} of its {size} bytes"
                return None
            pos += 8 + size + (size & 1)
        return None  # no data chunk: libsndfile has already refused it
    if fmt == "ogg":
        last = data.rfind(b"OggS", max(0, len(data) - (1 << 17)))
        if last < 0 or last + 27 > len(data):
            return "Ogg stream ends inside a page header"
        n_segments = data[last + 26]
        body = data[last + 27 : last + 27 + n_segments]
        if len(body) < n_segments or last + 27 + n_segments + sum(body) > len(data):
            return "Ogg stream ends inside a page"
        if not data[last + 5] & 0x04:
            return "Ogg stream has no end-of-stream page"
    return None


# --- opening and streaming ----------------------------------------------------------------------


class AudioSource:
    """An uploaded file whose header passed the limits; `windows()` decodes it as a stream."""

    def __init__(self, data: bytes, fmt: str, info: sf.SoundFile, limits: AudioLimits) -> None:
        self._data = data
        self._limits = limits
        self._format = fmt
        self._source_rate = int(info.samplerate)
        self._channels = int(info.channels)
        self._frames = int(info.frames)
        self.decoded_seconds: float | None = None
        """Length actually decoded at 22050 Hz, set once `windows()` has run to the end."""

    @property
    def format(self) -> str:
        return self._format

    @property
    def source_rate(self) -> int:
        return self._source_rate

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def duration_s(self) -> float:
        """Duration from the header."""
        return self._frames / self._source_rate

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono 22050 Hz float32 chunks of the decoded stream."""
        max_frames = self._limits.max_seconds * self._source_rate
        resampler = (
            None
            if self._source_rate == SAMPLE_RATE
            else soxr.ResampleStream(self._source_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )
        decoded = 0
        try:
            with sf.SoundFile(io.BytesIO(self._data)) as f:
                while True:
                    # f.read, not f.blocks: blocks() pads a short read up to the header's length.
                    block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    decoded += len(block)
                    if decoded > max_frames:  # the header lied about the length
                        raise AudioError("audio_too_long", _too_long_message(decoded / self._source_rate, self._limits))
                    mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
                    mono = np.ascontiguousarray(mono, dtype=np.float32)
                    out = mono if resampler is None else resampler.resample_chunk(mono)
                    if len(out):
                        yield out
        except sf.SoundFileError as e:  # LibsndfileError and friends, raised mid-stream
            raise AudioError("corrupt_audio", f"the {self._format} stream cannot be decoded: {_reason(e)}") from e
        # An MP3's Xing/Info header knows its length; 2% and 1 s slack for headers that only estimate.
        missing = self._frames - decoded
        if missing > max(0.02 * self._frames, self._source_rate):
            raise AudioError(
                "corrupt_audio",
                f"the {self._format} stream ends after {decoded / self._source_rate:.1f} s "
                f"of the {self.duration_s:.1f} s its header announces",
            )
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield tail

    def windows(self) -> Iterator[Window]:
        """One `Window` per WINDOW_FRAMES frames; a last remainder shorter than MIN_WINDOW_FRAMES is
        merged into the window before it. Holds at most about one window plus a block of audio."""
        full = WINDOW_FRAMES
        # buf[i] is global sample buf_start + i; zeros before the start are the centring padding.
        buf = np.zeros(_LEAD, np.float32)
        buf_start = -_LEAD
        pending: list[np.ndarray] = []
        n_samples = 0  # decoded samples so far (22050 Hz)
        f0 = 0  # first frame of the next window
        index = 0

        def emit(n_frames: int) -> Window:
            lo = f0 * HOP_LENGTH - _LEAD - buf_start
            segment = buf[lo : lo + (_CONTEXT + n_frames - 1) * HOP_LENGTH + N_FFT]
            return _window(index, f0, segment, n_frames, first=f0 == 0)

        for chunk in self.blocks():
            pending.append(chunk)
            n_samples += len(chunk)
            # Emit a full window only once MIN_WINDOW_FRAMES more frames exist after it: else it may
            # be the last one and have to absorb the remainder.
            if n_samples // HOP_LENGTH < f0 + full + MIN_WINDOW_FRAMES:
                continue
            buf = np.concatenate([buf, *pending])
            pending = []
            while n_samples // HOP_LENGTH >= f0 + full + MIN_WINDOW_FRAMES:
                yield emit(full)
                f0 += full
                index += 1
            drop = f0 * HOP_LENGTH - _LEAD - buf_start
            buf, buf_start = buf[drop:].copy(), buf_start + drop

        self.decoded_seconds = n_samples / SAMPLE_RATE
        if self.decoded_seconds < self._limits.min_seconds:  # the header lied the other way
            raise AudioError("audio_too_short", _too_short_message(self.decoded_seconds, self._limits))
        # Zeros after the end: the centring padding of the last frames.
        buf = np.concatenate([buf, *pending, np.zeros(N_FFT, np.float32)])
        remaining = n_samples // HOP_LENGTH - f0  # < full + MIN_WINDOW_FRAMES by construction
        if remaining > 0:
            yield emit(remaining)


def _seconds(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 120 else f"{s:.1f} s"


def _bytes(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:.0f} bytes"


def _too_long_message(seconds: float, limits: AudioLimits) -> str:
    return f"audio is {_seconds(seconds)} long; the limit is {_seconds(limits.max_seconds)}"


def _too_short_message(seconds: float, limits: AudioLimits) -> str:
    return f"audio is {_seconds(seconds)} long; at least {_seconds(limits.min_seconds)} is needed"


def _reason(e: Exception) -> str:
    # LibsndfileError's str() starts with "Error opening <_io.BytesIO object at 0x...>: ".
    return str(getattr(e, "error_string", "") or e)


def open_audio(data: bytes, limits: AudioLimits, declared_format: str | None = None) -> AudioSource:
    """Validate an upload from its bytes and header only (nothing is decoded yet).

    `declared_format` is the client's claim; the bytes decide when they disagree.
    """
    if len(data) == 0:
        raise AudioError("empty_audio", "the audio is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise AudioError(
            "audio_too_large",
            f"audio is {_bytes(len(data))}; the limit is {_bytes(limits.max_bytes)}",
        )
    fmt = sniff_format(data)
    if fmt is None:
        claimed = f" (declared {declared_format!r})" if declared_format else ""
        raise AudioError(
            "unsupported_format",
            f"unrecognised audio format{claimed}; supported: {', '.join(SUPPORTED_FORMATS)}",
        )
    try:
        info = sf.SoundFile(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError) as e:
        raise AudioError("corrupt_audio", f"the {fmt} file cannot be opened: {_reason(e)}") from e
    with info:
        if info.samplerate <= 0 or info.channels <= 0:
            raise AudioError("corrupt_audio", f"the {fmt} header has no sample rate or channels")
        cut = _truncation(fmt, data)
        if cut:
            raise AudioError("corrupt_audio", f"the {fmt} file is truncated: {cut}")
        source = AudioSource(data, fmt, info, limits)
    if source.duration_s > limits.max_seconds:
        raise AudioError("audio_too_long", _too_long_message(source.duration_s, limits))
    if source.duration_s < limits.min_seconds:
        raise AudioError("audio_too_short", _too_short_message(source.duration_s, limits))
    return source


# --- features -----------------------------------------------------------------------------------


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


def _analyse(segment: np.ndarray, n_frames: int, sr: int, first: bool):
    """Features of frames 0..n_frames-1 from `segment`, which frames (center=False) into _CONTEXT
    context frames followed by those n_frames, i.e. holds (_CONTEXT + n_frames - 1) * HOP + N_FFT
    samples."""
    segment = np.ascontiguousarray(segment, dtype=np.float32)
    power = np.abs(librosa.stft(segment, n_fft=N_FFT, hop_length=HOP_LENGTH, center=False))
    np.square(power, out=power)  # in place: memory per window is dominated by [1025, T] arrays
    mel = _mel_basis(sr, JUDGE_MELS) @ power
    # librosa.onset.onset_strength(y) exactly (mean positive dB rise over 128 mel bands, lag 1,
    # shifted 2 frames later), except that top_db's floor is relative to this window's maximum.
    db = librosa.power_to_db(mel, ref=1.0, top_db=TOP_DB)
    onset = np.maximum(0.0, np.diff(db, axis=1)).mean(axis=0)[:n_frames].astype(np.float32)
    if first:
        onset[:_CONTEXT] = 0.0  # librosa pads the envelope's start with zeros
    power, mel = power[:, _CONTEXT:], mel[:, _CONTEXT:]
    frames = librosa.util.frame(segment, frame_length=N_FFT, hop_length=HOP_LENGTH)[:, _CONTEXT:]
    audio = _scaled_db(mel)[np.newaxis]
    beat = np.ascontiguousarray(_scaled_db(_mel_basis(sr, BEAT_MELS) @ power).T)
    mixing = _mixing(frames, power, onset, sr)
    assert audio.shape[-1] == beat.shape[0] == onset.shape[0] == n_frames
    return audio, beat, mixing, onset


def _window(index: int, f0: int, segment: np.ndarray, n_frames: int, first: bool) -> Window:
    audio, beat, mixing, onset = _analyse(segment, n_frames, SAMPLE_RATE, first)
    return Window(index, f0 * HOP_LENGTH / SAMPLE_RATE, audio, beat, mixing, onset)


def _step_mean(x: np.ndarray) -> np.ndarray:
    """Mean over consecutive groups of MIXING_HOP_FRAMES frames (last axis); the last may be short."""
    n = x.shape[-1]
    starts = np.arange(0, n, MIXING_HOP_FRAMES)
    counts = np.diff(np.append(starts, n))
    return np.add.reduceat(x, starts, axis=-1) / counts


def _delta(x: np.ndarray) -> np.ndarray:
    return np.diff(x, prepend=x[:1])  # the first step's change is 0


def _spectral_shape(mag: np.ndarray, power: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """librosa's spectral_centroid, _bandwidth (p=2), _rolloff (85%) and _flatness of `mag`, as
    matrix products and one cumulative sum: librosa's own versions build several float64
    [1025, T] temporaries (~25 MB a window), the bulk of a stream's memory."""
    freq = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    total = mag.sum(axis=0, dtype=np.float64)
    weight = np.divide(1.0, total, out=np.zeros_like(total), where=total > np.finfo(np.float32).tiny)
    centroid = (freq @ mag) * weight
    spread = (freq**2 @ mag) * weight - centroid**2  # E[f^2] - E[f]^2 = E[(f - centroid)^2]
    cumulative = np.cumsum(mag, axis=0)
    rolloff = freq[np.argmax(cumulative >= 0.85 * cumulative[-1], axis=0)]
    del cumulative
    floored = np.maximum(power, 1e-10)  # librosa's amin on S**2
    arithmetic = floored.mean(axis=0, dtype=np.float64)
    geometric = np.exp(np.log(floored, out=floored).mean(axis=0, dtype=np.float64))
    return {
        "spectral_centroid": centroid,
        "spectral_bandwidth": np.sqrt(np.maximum(spread, 0.0)),
        "spectral_rolloff": rolloff,
        "spectral_flatness": geometric / arithmetic,
    }


def _mixing(frames: np.ndarray, power: np.ndarray, onset: np.ndarray, sr: int) -> np.ndarray:
    """[ceil(T/8), 32] scaled descriptors from time frames [N_FFT,T], power [1+N_FFT/2,T], onset [T]."""
    mag = np.sqrt(power)
    rms = np.sqrt(np.einsum("ij,ij->j", frames, frames) / N_FFT)
    sign = np.signbit(frames)
    zcr = np.count_nonzero(sign[1:] != sign[:-1], axis=0) / N_FFT
    del sign
    per_frame = {"rms": rms, "zero_crossing_rate": zcr, "onset_strength": onset}
    per_frame.update(_spectral_shape(mag, power, sr))
    # tuning=0: estimating it per window would be slow and make windows of one set disagree.
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=N_FFT)
    steps = {name: _step_mean(np.asarray(v, np.float64)) for name, v in per_frame.items()}
    for name in ("rms", "spectral_centroid", "onset_strength"):
        steps[f"{name}_delta"] = _delta(steps[name])
    # Band shares of a step's summed power, so a step with a few silent frames still sums to 1.
    bands = _step_mean((_band_masks(sr) @ power).astype(np.float64))
    total = bands.sum(axis=0)
    shares = np.divide(bands, total, out=np.zeros_like(bands), where=total > 0)
    steps.update(bass_energy=shares[0], mid_energy=shares[1], treble_energy=shares[2])
    for i, row in enumerate(_step_mean(chroma.astype(np.float64))):
        steps[MIXING_FEATURES[13 + i]] = row
    for i, row in enumerate(_step_mean(contrast.astype(np.float64))):
        steps[f"spectral_contrast_{i}"] = row
    raw = np.stack([steps[name] for name in MIXING_FEATURES], axis=1)
    return _scale_mixing(raw)


_LO = np.array([MIXING_RANGES[n][0] for n in MIXING_FEATURES])
_HI = np.array([MIXING_RANGES[n][1] for n in MIXING_FEATURES])


def _scale_mixing(raw: np.ndarray) -> np.ndarray:
    scaled = np.clip((np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0) - _LO) / (_HI - _LO), 0.0, 1.0)
    return scaled.astype(np.float32)


def mixing_features(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 32 MIXING_FEATURES of a mono signal, float32 [ceil(T/8), 32] in [0,1], T = len(y) // HOP.

    Same framing as `AudioSource.windows` (which calls the same code per window with its
    neighbours' samples as context); the contract's rate is 22050 Hz.
    """
    y = np.asarray(y, dtype=np.float32).ravel()
    n_frames = len(y) // HOP_LENGTH
    if n_frames == 0:
        return np.zeros((0, len(MIXING_FEATURES)), np.float32)
    segment = np.pad(y, (_LEAD, N_FFT))[: (_CONTEXT + n_frames - 1) * HOP_LENGTH + N_FFT]
    return _analyse(segment, n_frames, sr, first=True)[2]


# --- tempo --------------------------------------------------------------------------------------


def _mean_tempogram(env: np.ndarray, sr: int, hop: int, chunk: int = 1024) -> np.ndarray:
    """librosa.feature.tempogram(onset_envelope=env).mean(axis=1, keepdims=True), computed in
    chunks of columns: the whole tempogram of a 90-minute set is ~2 GB of float64 temporaries."""
    win = int(librosa.time_to_frames(8.0, sr=sr, hop_length=hop))  # librosa's ac_size=8 s
    padded = np.pad(env, win // 2, mode="linear_ramp", end_values=0)  # as tempogram(center=True)
    total = np.zeros(win)
    for a in range(0, len(env), chunk):
        b = min(len(env), a + chunk)
        tg = librosa.feature.tempogram(
            onset_envelope=padded[a : b + win - 1], sr=sr, hop_length=hop, win_length=win, center=False
        )
        total += tg.sum(axis=1)
    return (total / len(env))[:, np.newaxis]


def tempo_and_beats(
    onset_envelope: np.ndarray, sr: int = SAMPLE_RATE, hop: int = HOP_LENGTH
) -> tuple[float, list[float]]:
    """BPM and beat times (s) from the concatenated windows' onset envelopes; silence -> (0.0, [])."""
    env = np.nan_to_num(np.asarray(onset_envelope, dtype=np.float64).ravel())
    if env.size < 2 or env.max() <= 0:
        return 0.0, []
    # librosa.beat.beat_track's own tempo estimate (start_bpm=120 prior), with bounded memory.
    tempo = librosa.feature.tempo(tg=_mean_tempogram(env, sr, hop), sr=sr, hop_length=hop)
    bpm = float(tempo[0])
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, bpm=bpm, units="time")
    beats = [float(b) for b in beats]
    # That tempo is an autocorrelation lag in whole frames: ~6 BPM apart near 140 BPM. The tracked
    # beats follow the onsets, so their mean spacing (skips and doubles left out) is finer.
    if len(beats) >= 3:
        ibi = np.diff(beats)
        median = np.median(ibi)
        regular = ibi[np.abs(ibi - median) < 0.25 * median]
        if len(regular) >= 2:
            bpm = 60.0 / float(regular.mean())
    return bpm, beats


# --- metadata -----------------------------------------------------------------------------------

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


# --- warm-up ------------------------------------------------------------------------------------


def warm_up() -> None:
    """Run the whole path once on 3 s of synthetic 44.1 kHz stereo (numba JIT, filter caches)."""
    rate = 44_100
    t = np.arange(3 * rate) / rate
    y = 0.2 * np.sin(2 * np.pi * 220 * t)
    y[(t % 0.5) < 0.01] += 0.5  # clicks at 120 BPM
    buf = io.BytesIO()
    sf.write(buf, np.stack([y, y], axis=1).astype(np.float32), rate, format="WAV", subtype="PCM_16")
    source = open_audio(buf.getvalue(), AudioLimits())
    envelopes = [w.onset_envelope for w in source.windows()]
    tempo_and_beats(np.concatenate(envelopes))
    metadata_tokens([{"title": "warm up", "artist": "gateway", "genre": "house"}])


__all__ = [
    "SUPPORTED_FORMATS",
    "AudioError",
    "AudioLimits",
    "AudioSource",
    "Window",
    "mixing_features",
    "metadata_tokens",
    "open_audio",
    "sniff_format",
    "tempo_and_beats",
    "warm_up",
]
