"""The gateway end to end: real `bentoml serve` in front of the real Triton, on 127.0.0.1."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json

import httpx
import numpy as np
import pytest

from djserve.specs.genres import GENRE_WEIGHTS, JUDGE_COMPONENTS
from loadtest.samples import click_track, encode

CHAT = {
    "This is an amazing DJ set!": "en",
    "¿Cuál es el nombre de esta canción?": "es",
    "Furchtbarer Übergang, total daneben": "de",
    "Harika bir set, bu geçiş mükemmel": "tr",
}


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def clip_128() -> bytes:
    return encode(click_track(128, 30), fmt="wav")


def analyze(http, audio: bytes, filename="set.wav", genre="house", battle_id="b-1", **headers):
    return http.post(
        "/ai/judge/analyze",
        data={"battleId": battle_id, "genre": genre, "tracks": json.dumps([{"title": "Strings of Life", "artist": "Rhythim Is Rhythim"}])},
        files={"audio": (filename, audio, "application/octet-stream")},
        headers=headers,
    )


def test_judge_scores_a_click_track_with_its_tempo(http, clip_128):
    r = analyze(http, clip_128)
    assert r.status_code == 200, r.text
    sheet = r.json()
    assert abs(sheet["tempo"]["bpm"] - 128) <= 2
    beats = np.diff(sheet["tempo"]["beats"])
    assert abs(np.median(beats) - 60 / 128) < 0.02
    assert set(sheet["components"]) == set(JUDGE_COMPONENTS)
    assert set(sheet["technical"]) == {"bpm_accuracy", "beat_alignment", "transition_quality", "pitch_stability"}
    assert set(sheet["creative"]) == {"track_selection", "energy_flow", "genre_mixing", "originality"}
    for group in ("components", "technical", "creative"):
        assert all(0 <= v <= 1 for v in sheet[group].values())
    expected = sum(w * sheet["components"][c] for w, c in zip(GENRE_WEIGHTS["house"], JUDGE_COMPONENTS))
    assert sheet["overallScore"] == pytest.approx(expected, abs=1e-5)
    assert sheet["modelVersions"] == {"judge": 1, "technical": 1, "creative": 1}
    assert sheet["audio"]["windows"] == 2 and sheet["audio"]["durationSeconds"] == pytest.approx(30, abs=0.05)
    assert sheet["genreKnown"] is True and sheet["processingTimeMs"] > 0


@pytest.mark.parametrize("bpm", [100, 140])
def test_other_tempos_come_back_within_2_bpm(http, bpm):
    r = analyze(http, encode(click_track(bpm, 20), fmt="flac"), filename="set.flac")
    assert r.status_code == 200, r.text
    assert abs(r.json()["tempo"]["bpm"] - bpm) <= 2


def test_base64_json_and_every_format_are_accepted(http, clip_128):
    wav = analyze(http, clip_128).json()
    flac = http.post(
        "/ai/judge/analyze",
        json={"battleId": "b-1", "genre": "house", "audioData": {"base64": base64.b64encode(encode(click_track(128, 30), fmt="flac")).decode()},
              "tracks": [{"title": "Strings of Life", "artist": "Rhythim Is Rhythim"}]},
    )
    assert flac.status_code == 200, flac.text
    # FLAC is lossless: the same samples give the same scores (up to float32 batch-kernel noise).
    for group in ("components", "technical", "creative"):
        for k, v in wav[group].items():
            assert flac.json()[group][k] == pytest.approx(v, abs=5e-4)
    for fmt in ("ogg", "mp3"):
        r = analyze(http, encode(click_track(128, 12), fmt=fmt), filename=f"set.{fmt}")
        assert r.status_code == 200, (fmt, r.text)
        assert abs(r.json()["tempo"]["bpm"] - 128) <= 2


def test_unweighted_genre_uses_equal_weights(http, clip_128):
    sheet = analyze(http, clip_128, genre="hip-hop").json()
    assert sheet["genre"] == "hip_hop" and sheet["genreKnown"] is False
    assert sheet["overallScore"] == pytest.approx(np.mean(list(sheet["components"].values())), abs=1e-5)


def test_battle_names_the_winner_and_margin(http):
    sets = [
        {"djId": "dj-a", "audioData": {"base64": base64.b64encode(encode(click_track(128, 10, seed=1))).decode()}},
        {"djId": "dj-b", "audioData": {"base64": base64.b64encode(encode(click_track(140, 10, seed=2))).decode()}},
    ]
    r = http.post("/ai/judge/battle", json={"battleId": "battle-9", "genre": "techno", "sets": sets})
    assert r.status_code == 200, r.text
    body = r.json()
    a, b = body["sheets"]["dj-a"]["overallScore"], body["sheets"]["dj-b"]["overallScore"]
    assert body["margin"] == pytest.approx(abs(a - b), abs=1e-6)
    assert body["winner"] == ("dj-a" if a > b else "dj-b")


def test_sentiment_single_and_batch(http):
    r = http.post("/ai/sentiment/analyze", json={"text": "This is an amazing DJ set!", "language": "en"})
    assert r.status_code == 200, r.text
    one = r.json()
    assert one["sentiment"] in ("negative", "neutral", "positive")
    assert sum(one["scores"].values()) == pytest.approx(1, abs=1e-4)
    assert one["confidence"] == pytest.approx(max(one["scores"].values()))
    assert one["sentiment"] == max(one["scores"], key=one["scores"].get)
    assert one["modelVersion"] == 1 and one["language"] == "en"

    batch = http.post("/ai/sentiment/analyze/batch", json={"messages": [{"text": t, "language": l} for t, l in CHAT.items()]})
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["language"] for r in results] == list(CHAT.values())
    # Batched or alone, a message gets the same answer.
    assert results[0]["scores"] == pytest.approx(one["scores"], abs=1e-5)


def test_recommendations_known_and_cold_start(http):
    known = http.post("/ai/recommendations/battles", json={"userId": "test-user-123", "limit": 5})
    assert known.status_code == 200, known.text
    body = known.json()
    scores = [b["score"] for b in body["recommendations"]]
    assert body["coldStart"] is False and body["modelVersion"] == 1
    assert len(scores) == 5 and scores == sorted(scores, reverse=True)

    cold = http.post("/ai/recommendations/battles", json={"userId": "someone-new", "limit": 3}).json()
    assert cold["coldStart"] is True and cold["modelVersion"] is None and len(cold["recommendations"]) == 3
    popularity = [b["score"] for b in cold["recommendations"]]
    assert popularity == sorted(popularity, reverse=True)


def test_health_readiness_and_metrics(http, clip_128):
    assert http.get("/livez").status_code == 200
    assert http.get("/readyz").status_code == 200
    health = http.get("/health").json()
    assert health["status"] == "healthy" and health["triton"] is True and all(health["models"].values())
    analyze(http, clip_128)
    metrics = http.get("/metrics").text
    wanted = ('model_type="judge"', 'status="success"', 'version="1"', 'genre="house"')
    lines = [l for l in metrics.splitlines() if l.startswith("ai_model_predictions_total{") and all(w in l for w in wanted)]
    assert len(lines) == 1 and float(lines[0].rsplit(" ", 1)[1]) >= 1
    assert "ai_model_prediction_latency_seconds_bucket" in metrics


BAD_INPUTS = {
    "empty audio": (lambda h: analyze(h, b""), 400, "empty_audio"),
    "corrupt audio": (lambda h: analyze(h, b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 10), 400, "corrupt_audio"),
    "unsupported format": (lambda h: analyze(h, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, filename="x.png"), 415, "unsupported_format"),
    "audio too long": (lambda h: analyze(h, encode(np.zeros(601 * 8000, np.float32), sr=8000)), 413, "audio_too_long"),
    "audio too large": (lambda h: analyze(h, b"RIFF" + b"\x00" * (17 * 2**20)), 413, "audio_too_large"),
    "unknown genre": (lambda h: analyze(h, encode(click_track(120, 3)), genre="polka"), 422, "unknown_genre"),
    "empty text": (lambda h: h.post("/ai/sentiment/analyze", json={"text": "   "}), 422, "empty_text"),
    "oversized text": (lambda h: h.post("/ai/sentiment/analyze", json={"text": "x" * 501}), 422, "text_too_long"),
    "wrong type": (lambda h: h.post("/ai/recommendations/battles", json={"userId": "u", "limit": "ten"}), 422, "invalid_request"),
    "batch over the limit": (
        lambda h: h.post("/ai/sentiment/analyze/batch", json={"messages": [{"text": "hi"}] * 65}), 422, "batch_too_large"),
    "invalid json": (lambda h: h.post("/ai/sentiment/analyze", content=b"{nope", headers={"content-type": "application/json"}), 400, "invalid_json"),
    "bad base64": (lambda h: h.post("/ai/judge/analyze", json={"battleId": "b", "genre": "house", "audioData": {"base64": "%%%"}}), 400, "invalid_base64"),
    "bad pin header": (lambda h: h.post("/ai/sentiment/analyze", json={"text": "hi"}, headers={"X-Model-Version": "latest"}), 400, "invalid_header"),
    "unloaded pinned version": (lambda h: h.post("/ai/sentiment/analyze", json={"text": "hi"}, headers={"X-Model-Version": "99"}), 404, "unknown_model_version"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_named_4xx_while_a_good_request_succeeds(http, gateway, clip_128, case):
    send, status, code = BAD_INPUTS[case]
    with cf.ThreadPoolExecutor(2) as pool, httpx.Client(base_url=gateway.url, timeout=120) as other:
        good = pool.submit(analyze, other, clip_128)
        bad = pool.submit(send, http)
        bad, good = bad.result(), good.result()
    assert bad.status_code == status, bad.text
    error = bad.json()["error"]
    assert error["code"] == code and error["message"]
    assert good.status_code == 200


def test_a_long_set_is_scored_window_by_window(http):
    """7 minutes: 18 windows, scored in Triton batches of 4 windows, one tempo for the whole set."""
    audio = encode(click_track(124, 7 * 60, sr=8000), sr=8000)
    r = analyze(http, audio, battle_id="long-set")
    assert r.status_code == 200, r.text
    sheet = r.json()
    assert sheet["audio"]["windows"] == 18
    assert sheet["audio"]["durationSeconds"] == pytest.approx(420, abs=0.1)
    assert abs(sheet["tempo"]["bpm"] - 124) <= 2
    assert sheet["tempo"]["beats"][-1] > 410
