"""The gateway's audio front end (bentos/audio.py), on audio synthesised here."""

from __future__ import annotations

import io
import math
import tracemalloc

import librosa
import numpy as np
import pytest
import soundfile as sf

from bentos.audio import (
    SUPPORTED_FORMATS,
    AudioError,
    AudioLimits,
    metadata_tokens,
    mixing_features,
    open_audio,
    sniff_format,
    tempo_and_beats,
    warm_up,
)
from djserve.schemas import TrackMetadata
from djserve.specs.features import MIXING_FEATURES, MIXING_RANGES

SR = 22050
MP3_OK = "MP3" in sf.available_formats()
SUBTYPES = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def encode(y: np.ndarray, rate: int, fmt: str = "wav", subtype: str | None = None) -> bytes:
    container, default = SUBTYPES[fmt]
    buf = io.BytesIO()
    sf.write(buf, y, rate, format=container, subtype=subtype or default)
    return buf.getvalue()


def click_track(bpm: float, seconds: float, rate: int = 44_100, first: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Decaying 1 kHz bursts every 60/bpm s over a quiet drone; returns (signal, click times)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    y = 0.02 * np.sin(2 * np.pi * 110 * t)
    tb = np.arange(int(0.03 * rate)) / rate
    burst = 0.8 * np.sin(2 * np.pi * 1000 * tb) * np.exp(-tb / 0.005)
    times = np.arange(first, seconds - 0.05, 60 / bpm)
    for c in times:
        i = int(c * rate)
        y[i : i + len(burst)] += burst[: n - i]
    return y.astype(np.float32), times


def chirp(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    y = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    y[(t % 0.5) < 0.01] += 0.4
    return y.astype(np.float32)


def windows_of(data: bytes, **limits):
    source = open_audio(data, AudioLimits(**limits))
    return source, list(source.windows())


def error_code(data: bytes, iterate: bool = False, **limits) -> str:
    with pytest.raises(AudioError) as info:
        source = open_audio(data, AudioLimits(**limits))
        if iterate:
            list(source.windows())
    assert str(info.value) == info.value.message and info.value.message
    return info.value.code


# --- tempo --------------------------------------------------------------------------------------


@pytest.mark.parametrize("bpm", [100, 128, 140])
def test_click_track_tempo_and_beats(bpm):
    y, clicks = click_track(bpm, 30.0)
    _, windows = windows_of(encode(y, 44_100))
    assert len(windows) == 2  # 30 s: one full window and a remainder, envelopes concatenated
    tempo, beats = tempo_and_beats(np.concatenate([w.onset_envelope for w in windows]))
    assert abs(tempo - bpm) < 2.0, tempo
    assert len(beats) >= 0.9 * len(clicks)
    assert np.median(np.diff(beats)) == pytest.approx(60 / bpm, rel=0.03)
    # every beat sits on a click (frames are 23 ms apart)
    assert max(np.min(np.abs(clicks - b)) for b in beats) < 0.07


def test_silence_has_no_tempo():
    assert tempo_and_beats(np.zeros(2000, np.float32)) == (0.0, [])
    _, windows = windows_of(encode(np.zeros(5 * SR, np.float32), SR))
    assert tempo_and_beats(np.concatenate([w.onset_envelope for w in windows])) == (0.0, [])


# --- decoding -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chirp_windows():
    y = np.stack([chirp(10.0, 44_100), 0.5 * chirp(10.0, 44_100)], axis=1)
    decoded = {}
    for fmt in SUPPORTED_FORMATS:
        if fmt == "mp3" and not MP3_OK:
            continue
        decoded[fmt] = windows_of(encode(y, 44_100, fmt))
    return decoded


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_every_format_decodes_alike(fmt, chirp_windows):
    if fmt not in chirp_windows:
        pytest.skip(f"libsndfile here cannot write {fmt}")
    source, windows = chirp_windows[fmt]
    reference = chirp_windows["wav"][1][0]
    assert source.format == fmt
    assert (source.source_rate, source.channels) == (44_100, 2)
    assert source.duration_s == pytest.approx(10.0, abs=0.1)
    assert source.decoded_seconds == pytest.approx(10.0, abs=0.1)
    assert [w.audio_features.shape for w in windows] == [(1, 128, 10 * SR // 512)]
    (window,) = windows
    assert np.abs(window.audio_features - reference.audio_features).mean() < 0.05
    assert np.abs(window.beat_mel - reference.beat_mel).mean() < 0.05
    assert np.abs(window.mixing_features - reference.mixing_features).mean() < 0.05


def test_mp3_is_decoded():
    assert MP3_OK, "the installed libsndfile should read MP3"


def test_declared_format_loses_to_the_bytes():
    data = encode(chirp(3.0, SR), SR, "flac")
    assert open_audio(data, AudioLimits(), declared_format="mp3").format == "flac"


def test_stereo_44k_becomes_22050_mono():
    rate, seconds = 44_100, 6.0
    t = np.arange(int(seconds * rate)) / rate
    left, right = 0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 3000 * t)
    data = encode(np.stack([left, right], axis=1).astype(np.float32), rate, subtype="FLOAT")
    source, (window,) = windows_of(data)
    assert (source.source_rate, source.channels) == (rate, 2)
    mono = librosa.resample(((left + right) / 2).astype(np.float32), orig_sr=rate, target_sr=SR)
    n_frames = len(mono) // 512
    assert window.audio_features.shape == (1, 128, n_frames)
    mel = librosa.feature.melspectrogram(y=mono, sr=SR, n_fft=2048, hop_length=512, n_mels=128)[:, :n_frames]
    expected = (librosa.power_to_db(mel, ref=np.max, top_db=80) + 80) / 80
    assert np.abs(window.audio_features[0] - expected).max() < 0.01
    # both channels are in the mix, neither alone
    mel_bin = librosa.mel_frequencies(128, fmax=SR / 2)
    loud = window.audio_features[0].mean(axis=1)
    assert loud[np.argmin(np.abs(mel_bin - 440))] > 0.9 and loud[np.argmin(np.abs(mel_bin - 3000))] > 0.9


# --- framing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noise_60s():
    rng = np.random.default_rng(7)
    y = (0.1 * rng.standard_normal(60 * SR)).astype(np.float32)
    y[:: SR // 4] += 0.8
    return y, windows_of(encode(y, SR, subtype="FLOAT"))[1]


def test_60s_clip_windows_match_librosa_on_the_whole_set(noise_60s):
    y, windows = noise_60s
    n_frames = len(y) // 512  # 2583: 1024 + 1024 + 535
    assert [w.index for w in windows] == [0, 1, 2]
    assert [w.audio_features.shape[-1] for w in windows] == [1024, 1024, 535]
    assert [w.start_s for w in windows] == pytest.approx([0.0, 1024 * 512 / SR, 2048 * 512 / SR])
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    mel84 = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=84)
    for w, start in zip(windows, (0, 1024, 2048)):
        n = w.audio_features.shape[-1]
        expected = (librosa.power_to_db(mel[:, start : start + n], ref=np.max, top_db=80) + 80) / 80
        np.testing.assert_allclose(w.audio_features[0], expected, atol=1e-4)
        expected = (librosa.power_to_db(mel84[:, start : start + n], ref=np.max, top_db=80) + 80) / 80
        np.testing.assert_allclose(w.beat_mel, expected.T, atol=1e-4)
    onset = librosa.onset.onset_strength(y=y, sr=SR)
    np.testing.assert_allclose(np.concatenate([w.onset_envelope for w in windows]), onset[:n_frames], atol=1e-4)


def test_the_live_beat_input_is_the_windows_beat_mel_alone(noise_60s):
    """The live path computes only the beat tracker's input; it must be the judge path's numbers."""
    y, windows = noise_60s
    source = open_audio(encode(y, SR, subtype="FLOAT"), AudioLimits())
    np.testing.assert_array_equal(source.beat_mel(), np.concatenate([w.beat_mel for w in windows]))


def test_full_window_shapes(noise_60s):
    _, windows = noise_60s
    full = windows[0]
    assert full.audio_features.shape == (1, 128, 1024)
    assert full.beat_mel.shape == (1024, 84)
    assert full.mixing_features.shape == (128, 32)
    assert full.onset_envelope.shape == (1024,)
    assert windows[2].mixing_features.shape == (math.ceil(535 / 8), 32)
    for w in windows:
        for a in (w.audio_features, w.beat_mel, w.mixing_features, w.onset_envelope):
            assert a.dtype == np.float32


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (1024, [1024]),  # exactly one window: 1024 * 512 samples give 1024 frames, not librosa's 1025
        (1024 + 63, [1087]),  # remainder below MIN_WINDOW_FRAMES: merged into the window before
        (1024 + 64, [1024, 64]),
        (2048, [1024, 1024]),
        (100, [100]),
    ],
)
def test_window_cutting(frames, expected):
    y = chirp((frames * 512 + 300) / SR, SR)[: frames * 512 + 300]  # +300: not a whole hop
    _, windows = windows_of(encode(y, SR, subtype="FLOAT"))
    assert [w.audio_features.shape[-1] for w in windows] == expected
    assert [w.mixing_features.shape[0] for w in windows] == [math.ceil(n / 8) for n in expected]


# --- features -----------------------------------------------------------------------------------


def assert_unit_range(*arrays):
    for a in arrays:
        assert np.isfinite(a).all()
        assert a.min() >= 0.0 and a.max() <= 1.0


def test_features_in_unit_range(noise_60s):
    for w in noise_60s[1]:
        assert_unit_range(w.audio_features, w.beat_mel, w.mixing_features)
        bass = MIXING_FEATURES.index("bass_energy")
        shares = w.mixing_features[:, bass : bass + 3].sum(axis=1)  # bass + mid + treble
        np.testing.assert_allclose(shares, 1.0, atol=1e-4)


def test_silence_is_finite_and_in_range():
    _, windows = windows_of(encode(np.zeros(5 * SR, np.float32), SR))
    for w in windows:
        assert_unit_range(w.audio_features, w.beat_mel, w.mixing_features)
        assert not w.onset_envelope.any()
    silent = mixing_features(np.zeros(3 * SR, np.float32))
    assert_unit_range(silent)
    column = {name: i for i, name in enumerate(MIXING_FEATURES)}
    nothing = ["loudness", "spectral_centroid", "spectral_bandwidth", "bass_energy", "mid_energy", "treble_energy",
               "onset_strength", "pulse_clarity", "beat_flam", "tuning_coherence"]
    assert not silent[:, [column[n] for n in nothing]].any()  # no level, brightness, bands, rhythm or pitch
    middle = ["loudness_delta", "spectral_centroid_delta", "tuning_offset"]  # no change, no offset
    assert (silent[:, [column[n] for n in middle]] == 0.5).all()


def test_mixing_features_function_matches_windows_and_librosa():
    y = chirp(8.0, SR)
    _, (window,) = windows_of(encode(y, SR, subtype="FLOAT"))
    features = mixing_features(y)
    n_frames = len(y) // 512
    assert features.shape == (math.ceil(n_frames / 8), 32)
    np.testing.assert_allclose(features, window.mixing_features, atol=1e-6)

    def scaled_steps(name, per_frame):
        per_frame = per_frame[:n_frames]
        steps = np.array([per_frame[i : i + 8].mean() for i in range(0, n_frames, 8)])
        lo, hi = MIXING_RANGES[name]
        return np.clip((steps - lo) / (hi - lo), 0, 1)

    column = {name: i for i, name in enumerate(MIXING_FEATURES)}
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    expected = {
        "spectral_centroid": librosa.feature.spectral_centroid(S=S, sr=SR)[0],
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=S, sr=SR)[0],
        "spectral_flatness": librosa.feature.spectral_flatness(S=S)[0],
        "onset_strength": librosa.onset.onset_strength(y=y, sr=SR),
    }
    for name, per_frame in expected.items():
        np.testing.assert_allclose(features[:, column[name]], scaled_steps(name, per_frame), atol=2e-3, err_msg=name)
    # loudness: the dB of each step's mean power (librosa's RMS squared), and its step-to-step change
    power = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0][:n_frames] ** 2
    steps_db = 10 * np.log10(np.array([power[i : i + 8].mean() for i in range(0, n_frames, 8)]))
    np.testing.assert_allclose(features[:, column["loudness"]], np.clip((steps_db + 60) / 60, 0, 1), atol=2e-3)
    delta = np.clip((np.diff(steps_db, prepend=steps_db[0]) + 12) / 24, 0, 1)
    np.testing.assert_allclose(features[:, column["loudness_delta"]], delta, atol=2e-3)
    assert features[0, column["loudness_delta"]] == pytest.approx(0.5)


def test_rhythm_and_tuning_descriptors_hear_what_mixing_quality_is_made_of():
    """Two click tracks a flam apart double the kicks; a drone off its semitone moves the tuning."""
    from djserve.audio_features import signal_features

    clicks, _ = click_track(120, 8.0, rate=SR)
    late, _ = click_track(120, 8.0, rate=SR, first=0.18)  # 80 ms after each click
    column = {name: i for i, name in enumerate(MIXING_FEATURES)}

    def mean(y, name):
        return float(signal_features(y).mixing_features[:, column[name]].mean())

    assert mean(clicks + late, "beat_flam") > mean(clicks, "beat_flam") + 0.2
    assert mean(clicks, "pulse_clarity") > 0.5
    t = np.arange(int(4 * SR)) / SR
    in_tune = 0.3 * np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    off = 0.3 * np.sin(2 * np.pi * 440.0 * 2 ** (40 / 1200) * t).astype(np.float32)  # +40 cents
    cents = lambda y: mean(y, "tuning_offset") * 100 - 50  # noqa: E731 - scaled back to cents
    assert abs(cents(in_tune)) < 10
    assert cents(off) == pytest.approx(40, abs=12)


# --- errors -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wav_3s():
    return encode(chirp(3.0, SR), SR)


def test_empty():
    assert error_code(b"") == "empty_audio"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(200),
        b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + bytes(200),  # MPEG-4 audio
        b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(200),  # AAC ADTS: MPEG sync, but layer 00
        b"just some text, not audio",
    ],
    ids=["png", "m4a", "aac", "text"],
)
def test_unsupported(data):
    assert error_code(data) == "unsupported_format"
    with pytest.raises(AudioError) as info:
        open_audio(data, AudioLimits(), declared_format="mp3")
    assert all(fmt in info.value.message for fmt in SUPPORTED_FORMATS)


def test_random_bytes_behind_a_riff_header():
    data = b"RIFF\x00\x10\x00\x00WAVE" + np.random.default_rng(0).bytes(4000)
    assert error_code(data) == "corrupt_audio"


@pytest.mark.parametrize("fmt", SUPPORTED_FORMATS)
def test_truncated_file(fmt):
    if fmt == "mp3" and not MP3_OK:
        pytest.skip("no MP3")
    data = encode(chirp(6.0, 44_100), 44_100, fmt)
    assert error_code(data[: len(data) // 2], iterate=True) == "corrupt_audio"


def test_too_large(wav_3s):
    assert error_code(wav_3s, max_bytes=len(wav_3s) - 1) == "audio_too_large"
    assert open_audio(wav_3s, AudioLimits(max_bytes=len(wav_3s))).duration_s == pytest.approx(3.0)


def test_too_long_and_too_short(wav_3s):
    assert error_code(wav_3s, max_seconds=2.5) == "audio_too_long"
    assert error_code(wav_3s, min_seconds=3.5) == "audio_too_short"


def test_a_header_that_understates_the_length_is_caught_while_decoding(wav_3s):
    source = open_audio(wav_3s, AudioLimits())
    # The checks on the header have passed; pretend the header had said 1 s (limits are per source).
    source._limits = AudioLimits(max_seconds=2.0)
    with pytest.raises(AudioError) as info:
        list(source.windows())
    assert info.value.code == "audio_too_long"


def test_sniff_format(wav_3s):
    assert sniff_format(wav_3s) == "wav"
    assert sniff_format(encode(chirp(1.0, SR), SR, "flac")) == "flac"
    assert sniff_format(encode(chirp(1.0, SR), SR, "ogg")) == "ogg"
    assert sniff_format(b"ID3\x04\x00" + bytes(20)) == "mp3"
    assert sniff_format(b"\xff\xfb\x90\x64" + bytes(20)) == "mp3"
    assert sniff_format(b"\xff\xf1\x50\x80" + bytes(20)) is None
    assert sniff_format(b"RIFF\x00\x00\x00\x00AVI ") is None


# --- a long set streams -------------------------------------------------------------------------


def test_20_minute_set_streams_in_bounded_memory():
    rate, minutes = 16_000, 20  # 16 kHz mono PCM: a 37 MiB file that still goes through the resampler
    beat = 60 / 128
    bar = np.zeros(int(rate * 8 * beat), np.float32)  # 8 beats at 128 BPM, tiled
    rng = np.random.default_rng(3)
    for i in range(8):
        start = int(i * beat * rate)
        bar[start : start + 400] += 0.6 * rng.standard_normal(400).astype(np.float32)
    bar += 0.05 * np.sin(2 * np.pi * 55 * np.arange(len(bar)) / rate).astype(np.float32)
    y = np.tile((bar * 32767).astype(np.int16), math.ceil(minutes * 60 * rate / len(bar)))[: minutes * 60 * rate]
    data = encode(y, rate)
    del y
    full_decode = minutes * 60 * SR * 4  # the set as float32 at 22050 Hz: 101 MiB

    tracemalloc.start()
    try:
        source = open_audio(data, AudioLimits())
        count, envelopes = 0, []
        for w in source.windows():
            count += 1
            envelopes.append(w.onset_envelope)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n_frames = minutes * 60 * SR // 512
    assert count == n_frames // 1024 + 1  # 50 full windows and one of the 479 frames left
    assert source.decoded_seconds == pytest.approx(minutes * 60, abs=0.05)
    assert peak < full_decode / 3, f"peak {peak / 2**20:.1f} MiB"
    tempo, _ = tempo_and_beats(np.concatenate(envelopes))
    assert abs(tempo - 128) < 2


# --- metadata -----------------------------------------------------------------------------------


def test_metadata_tokens_are_stable():
    track = {"title": "One More Time", "artist": "Daft Punk", "genre": "House"}
    expected = [8199, 2823, 6505, 1215, 4698, 1386]  # crc32 of each lower-cased word, mod 9999, + 1
    tokens = metadata_tokens([track])
    assert tokens.dtype == np.int64 and tokens.tolist() == expected
    assert metadata_tokens([TrackMetadata(**track)]).tolist() == expected
    assert metadata_tokens([{"title": "ONE more, time!"}]).tolist() == expected[:3]


def test_metadata_tokens_padding_and_bounds():
    assert metadata_tokens([]).tolist() == [0]
    assert metadata_tokens([TrackMetadata()]).tolist() == [0]
    many = [{"title": f"track {i}", "artist": f"artist {i}", "genre": "techno"} for i in range(200)]
    tokens = metadata_tokens(many, max_tokens=256)
    assert len(tokens) == 256
    assert tokens.min() >= 1 and tokens.max() <= 9999
    assert metadata_tokens(many, vocab_size=50).max() <= 49


def test_warm_up_runs():
    warm_up()
