"""Live analysis: a one-second chunk of a stream through the gateway to the beat tracker."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from clients import GatewayClient, InvalidRequest
from clients.triton import TritonModelClient
from loadtest.samples import click_track, encode


@pytest.fixture(scope="module")
def gw(gateway):
    with GatewayClient(gateway.url, timeout=60) as c:
        yield c


def test_a_one_second_chunk_gets_the_beat_trackers_answer(gw, triton):
    chunk = encode(click_track(120, 1.0), fmt="wav")
    beats = gw.live_beats(chunk, stream_id="stream-7")
    assert beats.frames == 22050 // 512  # 43 frames of the 22050 Hz / hop 512 contract
    assert beats.duration_seconds == pytest.approx(1.0, abs=0.01)
    assert beats.model_version >= 1

    # The same chunk's features sent to Triton directly give the same numbers: the gateway adds
    # transport and preprocessing, nothing else.
    from bentos import audio
    from bentos.live import _beat_mel

    mel = _beat_mel(audio.open_audio(chunk, audio.AudioLimits(min_seconds=0.3)))
    with TritonModelClient(triton.grpc_url) as direct:
        out = direct.infer("beat_tracker", {"mel_frames": mel}, version=beats.model_version)
    assert beats.beat_probability == pytest.approx(float(out["beat_probability"][0, 0]), abs=1e-5)
    assert beats.tempo_confidence == pytest.approx(float(np.mean(out["tempo_confidence"])), abs=1e-5)


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
