"""Live analysis: chunks of a stream through the gateway to the beat tracker and its decoding."""

from __future__ import annotations

import base64

import pytest

from clients import GatewayClient, InvalidRequest
from clients.triton import TritonModelClient
from loadtest.samples import click_track, encode


@pytest.fixture(scope="module")
def gw(gateway):
    with GatewayClient(gateway.url, timeout=60) as c:
        yield c


@pytest.mark.parametrize("seconds", [1.0, 6.0])
def test_a_chunk_gets_the_beat_trackers_answer(gw, triton, seconds):
    chunk = encode(click_track(120, seconds), fmt="wav")
    beats = gw.live_beats(chunk, stream_id="stream-7")
    assert beats.frames == int(seconds * 22050) // 512  # the 22050 Hz / hop 512 contract (43 a second)
    assert beats.duration_seconds == pytest.approx(seconds, abs=0.01)
    assert beats.model_version >= 1

    # The same chunk's features sent to Triton directly, decoded by djserve.beats, give the same
    # answer: the gateway adds transport, preprocessing and decoding, nothing else. (These are
    # untrained reference weights: the answer's shape and consistency are checked, not its accuracy.)
    from bentos import audio
    from bentos.live import _beat_mel
    from djserve.beats import decode

    mel = _beat_mel(audio.open_audio(chunk, audio.AudioLimits(min_seconds=0.3)))
    with TritonModelClient(triton.grpc_url) as direct:
        out = direct.infer("beat_tracker", {"mel_frames": mel}, version=beats.model_version)
    assert out["beat_activation"].shape == (1, beats.frames, 1)
    assert beats.beat_probability == pytest.approx(float(out["beat_probability"][0, 0]), abs=1e-5)
    expected = decode(out["beat_activation"][0])
    assert beats.beats == pytest.approx(expected.times.tolist(), abs=1e-3)
    assert beats.tempo_confidence == pytest.approx(expected.confidence, abs=1e-5)
    assert (beats.bpm is None) == (expected.bpm is None)
    if beats.bpm is not None:
        assert beats.bpm == pytest.approx(expected.bpm, abs=0.01) and 60 * 0.99 <= beats.bpm <= 200 * 1.01

    # Bounds every answer keeps.
    assert beats.beats == sorted(beats.beats) and all(0 <= t < seconds for t in beats.beats)
    assert 0.0 <= beats.beat_probability <= 1.0 and 0.0 <= beats.tempo_confidence <= 1.0
    assert beats.bpm is not None or beats.tempo_confidence == 0.0


@pytest.mark.parametrize(
    "seconds, status, code",
    [(0.1, 422, "audio_too_short"), (12.0, 413, "audio_too_long")],
)
def test_chunks_outside_the_live_limits_are_refused(gw, seconds, status, code):
    with pytest.raises(InvalidRequest) as err:
        gw.live_beats(encode(click_track(120, seconds), fmt="wav"), stream_id="s")
    assert (err.value.status, err.value.code) == (status, code)


def test_a_chunk_that_is_not_audio_is_a_clear_4xx(gateway):
    import httpx

    body = {"streamId": "s", "audioData": {"base64": base64.b64encode(b"not audio at all").decode()}}
    r = httpx.post(f"{gateway.url}/ai/live/beats", json=body, timeout=30)
    assert 400 <= r.status_code < 500 and r.json()["error"]["code"] in ("unsupported_format", "corrupt_audio")
