"""The gateway client against httpx.MockTransport: paths, bodies, headers, parsing and typed errors."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
from pathlib import Path

import httpx
import pytest

from clients.gateway import (
    AsyncGatewayClient,
    GatewayClient,
    GatewayConnectionError,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
)
from djserve.schemas import (
    AudioInfo,
    BattleResult,
    Health,
    RecommendedBattle,
    Recommendations,
    ScoreSheet,
    SentimentBatchResult,
    SentimentRequest,
    SentimentResult,
    TempoInfo,
)

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)
MP3 = b"ID3\x04\x00" + bytes(32)


def sheet(battle_id: str = "b-1", overall: float = 0.8) -> ScoreSheet:
    return ScoreSheet(
        battle_id=battle_id,
        genre="house",
        genre_known=True,
        overall_score=overall,
        components={"technical_skill": 0.8, "track_selection": 0.7, "energy_flow": 0.9, "creativity": 0.6},
        technical={"bpm_accuracy": 0.9, "beat_alignment": 0.8, "transition_quality": 0.7, "pitch_stability": 0.9},
        creative={"track_selection": 0.7, "energy_flow": 0.9, "genre_mixing": 0.5, "originality": 0.6},
        tempo=TempoInfo(bpm=124.0, beats=[0.0, 0.48]),
        audio=AudioInfo(duration_seconds=30.0, sample_rate=22050, windows=3),
        model_versions={"judge": 2},
        processing_time_ms=12.5,
    )


def sentiment(version: int = 1) -> SentimentResult:
    return SentimentResult(
        sentiment="positive",
        confidence=0.9,
        scores={"negative": 0.05, "neutral": 0.05, "positive": 0.9},
        model_version=version,
    )


def dump(model) -> dict:
    return model.model_dump(mode="json", by_alias=True)


class Recorder:
    """A MockTransport handler: records requests and answers from a path -> response table."""

    def __init__(self, routes: dict[str, httpx.Response | Exception]):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.routes[request.url.path]
        if isinstance(answer, Exception):
            raise answer
        # a fresh response each time: a response object must not be shared between clients
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())

    async def async_call(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def client(routes) -> tuple[GatewayClient, Recorder]:
    rec = Recorder(routes)
    return GatewayClient("http://gateway.test", transport=httpx.MockTransport(rec)), rec


def async_client(routes) -> tuple[AsyncGatewayClient, Recorder]:
    rec = Recorder(routes)
    return AsyncGatewayClient("http://gateway.test", transport=httpx.MockTransport(rec.async_call)), rec


def multipart(request: httpx.Request) -> dict[str, tuple[str | None, bytes, str]]:
    """name -> (filename, payload, content type) of a multipart/form-data body."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + request.content, policy=email.policy.HTTP)
    assert message.is_multipart()
    parts = {}
    for part in message.iter_parts():
        parts[part.get_param("name", header="content-disposition")] = (
            part.get_filename(),
            part.get_payload(decode=True),
            part.get_content_type(),
        )
    return parts


ERROR_422 = httpx.Response(
    422, json={"error": {"code": "audio_too_long", "message": "the set is 3 hours long", "field": "audio"}}
)


# --- requests ------------------------------------------------------------------------------------


def test_analyze_set_multipart_bytes_and_pin():
    gw, rec = client({"/ai/judge/analyze": httpx.Response(200, json=dump(sheet()))})
    with gw:
        result = gw.analyze_set(
            WAV, battle_id="b-1", genre="house", tracks=[{"title": "T", "artist": "A"}], pin_version=2
        )
    assert isinstance(result, ScoreSheet) and result == sheet()
    req = rec.last
    assert req.method == "POST" and req.url.path == "/ai/judge/analyze"
    assert req.headers["X-Model-Version"] == "2"
    parts = multipart(req)
    assert parts["battleId"][1] == b"b-1"
    assert parts["genre"][1] == b"house"
    assert json.loads(parts["tracks"][1]) == [{"title": "T", "artist": "A", "genre": ""}]
    filename, payload, ctype = parts["audio"]
    assert payload == WAV and filename == "audio.wav" and ctype == "audio/wav"


def test_analyze_set_from_a_path_without_pin(tmp_path: Path):
    path = tmp_path / "my set.flac"
    path.write_bytes(b"fLaC" + bytes(16))
    gw, rec = client({"/ai/judge/analyze": httpx.Response(200, json=dump(sheet()))})
    with gw:
        gw.analyze_set(str(path), battle_id="b-1", genre="techno")
    assert "X-Model-Version" not in rec.last.headers
    parts = multipart(rec.last)
    assert parts["audio"] == ("my set.flac", b"fLaC" + bytes(16), "audio/flac")
    assert json.loads(parts["tracks"][1]) == []


def test_judge_battle_json_camel_case_base64(tmp_path: Path):
    b_path = tmp_path / "b.mp3"
    b_path.write_bytes(MP3)
    answer = BattleResult(
        battle_id="b-9", sheets={"dj-a": sheet("b-9", 0.8), "dj-b": sheet("b-9", 0.6)},
        winner="dj-a", margin=0.2, processing_time_ms=30.0,
    )
    gw, rec = client({"/ai/judge/battle": httpx.Response(200, json=dump(answer))})
    with gw:
        result = gw.judge_battle("b-9", "house", [("dj-a", WAV), ("dj-b", b_path)], pin_version=3)
    assert isinstance(result, BattleResult) and result.winner == "dj-a" and result.sheets["dj-b"].overall_score == 0.6
    req = rec.last
    assert req.url.path == "/ai/judge/battle" and req.headers["X-Model-Version"] == "3"
    assert req.headers["content-type"] == "application/json"
    body = json.loads(req.content)
    assert body["battleId"] == "b-9" and body["genre"] == "house"
    a, b = body["sets"]
    assert a["djId"] == "dj-a" and base64.b64decode(a["audioData"]["base64"]) == WAV
    assert a["audioData"]["format"] == "wav"
    assert b["djId"] == "dj-b" and base64.b64decode(b["audioData"]["base64"]) == MP3
    assert b["audioData"]["format"] == "mp3"
    assert "battle_id" not in body and "audio_data" not in a


def test_sentiment_batch_and_recommendations():
    batch = SentimentBatchResult(results=[sentiment(), sentiment()], processing_time_ms=3.0)
    recs = Recommendations(
        user_id="u-1", cold_start=False, model_version=1,
        recommendations=[RecommendedBattle(battle_id="b-2", title="Final", genre="house", score=0.9)],
    )
    gw, rec = client({
        "/ai/sentiment/analyze": httpx.Response(200, json=dump(sentiment(2))),
        "/ai/sentiment/analyze/batch": httpx.Response(200, json=dump(batch)),
        "/ai/recommendations/battles": httpx.Response(200, json=dump(recs)),
    })
    with gw:
        one = gw.analyze_sentiment("great set!", language="en")
        assert isinstance(one, SentimentResult) and one.model_version == 2
        assert json.loads(rec.last.content) == {"text": "great set!", "language": "en"}

        many = gw.analyze_sentiment_batch(["a", SentimentRequest(text="b", language="fr")])
        assert isinstance(many, SentimentBatchResult) and len(many.results) == 2
        assert json.loads(rec.last.content) == {
            "messages": [{"text": "a", "language": None}, {"text": "b", "language": "fr"}]
        }

        r = gw.recommend_battles("u-1", limit=5)
        assert isinstance(r, Recommendations) and r.recommendations[0].battle_id == "b-2"
        assert rec.last.url.path == "/ai/recommendations/battles"
        assert json.loads(rec.last.content) == {"userId": "u-1", "limit": 5}


def test_our_request_id_and_feedback_naming_it():
    from djserve.schemas import FeedbackAccepted

    accepted = FeedbackAccepted(request_id="battle-7-a", family="judge", version=2, metric="neg_abs_error", score=-0.05)
    gw, rec = client({
        "/ai/sentiment/analyze": httpx.Response(200, json=dump(sentiment(2))),
        "/ai/feedback": httpx.Response(202, json=dump(accepted)),
    })
    with gw:
        gw.analyze_sentiment("great set!", request_id="chat-9")
        assert rec.last.headers["X-Request-ID"] == "chat-9"
        gw.analyze_sentiment("great set!")
        assert "X-Request-ID" not in rec.last.headers  # the gateway makes one
        result = gw.feedback("battle-7-a", "judge_score", 0.75)
    assert result == accepted
    assert json.loads(rec.last.content) == {"requestId": "battle-7-a", "kind": "judge_score", "value": 0.75, "index": 0}


def test_health_and_ready():
    healthy = Health(status="healthy", triton=True, models={"judge": True}, version="0.1.0")
    degraded = Health(status="degraded", triton=False, models={"judge": False}, version="0.1.0")
    gw, rec = client({"/health": httpx.Response(200, json=dump(healthy)), "/readyz": httpx.Response(200)})
    with gw:
        assert gw.health() == healthy and rec.last.method == "GET"
        assert gw.ready() is True
        rec.routes["/readyz"] = httpx.Response(503, json={"error": {"code": "not_ready", "message": "warming"}})
        assert gw.ready() is False
        rec.routes["/readyz"] = httpx.ConnectError("refused")
        assert gw.ready() is False
        rec.routes["/health"] = httpx.Response(503, json=dump(degraded))
        assert gw.health() == degraded  # a degraded health body is an answer, not an error


def test_default_and_custom_headers():
    rec = Recorder({"/ai/sentiment/analyze": httpx.Response(200, json=dump(sentiment()))})
    with GatewayClient("http://gateway.test", headers={"Authorization": "Bearer t"},
                       transport=httpx.MockTransport(rec)) as gw:
        gw.analyze_sentiment("hi")
    assert rec.last.headers["Authorization"] == "Bearer t"
    assert rec.last.url.host == "gateway.test"


# --- errors --------------------------------------------------------------------------------------


def test_error_body_becomes_invalid_request():
    gw, _ = client({"/ai/judge/analyze": ERROR_422})
    with gw, pytest.raises(InvalidRequest) as info:
        gw.analyze_set(WAV, battle_id="b-1", genre="house")
    e = info.value
    assert (e.status, e.code, e.message, e.field) == (422, "audio_too_long", "the set is 3 hours long", "audio")
    assert isinstance(e, GatewayError) and "audio_too_long" in str(e)


def test_400_without_an_error_body():
    gw, _ = client({"/ai/sentiment/analyze": httpx.Response(400, text="bad things")})
    with gw, pytest.raises(InvalidRequest) as info:
        gw.analyze_sentiment("x")
    assert (info.value.status, info.value.code, info.value.message, info.value.field) == (
        400, "http_400", "bad things", None,
    )
    gw, _ = client({"/ai/sentiment/analyze": httpx.Response(
        400, json={"error": {"code": "unknown_language", "message": "no", "field": "language"}})})
    with gw, pytest.raises(InvalidRequest) as info:
        gw.analyze_sentiment("x", language="xx")
    assert (info.value.code, info.value.field) == ("unknown_language", "language")


def test_503_with_retry_after_becomes_service_unavailable():
    body = {"error": {"code": "triton_unavailable", "message": "Triton is restarting"}}
    gw, _ = client({"/ai/sentiment/analyze": httpx.Response(503, json=body, headers={"Retry-After": "2"})})
    with gw, pytest.raises(ServiceUnavailable) as info:
        gw.analyze_sentiment("x")
    e = info.value
    assert e.retry_after == 2.0 and e.status == 503
    assert (e.code, e.message) == ("triton_unavailable", "Triton is restarting")

    gw, _ = client({"/ai/sentiment/analyze": httpx.Response(503, text="")})
    with gw, pytest.raises(ServiceUnavailable) as info:
        gw.analyze_sentiment("x")
    assert info.value.retry_after is None and info.value.code == "http_503"


def test_other_5xx_is_a_gateway_error():
    gw, _ = client({"/ai/recommendations/battles": httpx.Response(500, text="boom")})
    with gw, pytest.raises(GatewayError) as info:
        gw.recommend_battles("u-1")
    assert type(info.value) is GatewayError and info.value.status == 500 and info.value.message == "boom"


def test_a_response_that_is_not_the_schema_is_a_gateway_error():
    gw, _ = client({"/ai/sentiment/analyze": httpx.Response(200, json={"nope": 1})})
    with gw, pytest.raises(GatewayError) as info:
        gw.analyze_sentiment("x")
    assert info.value.code == "invalid_response" and info.value.status == 200


@pytest.mark.parametrize("exc,code", [
    (httpx.ConnectError("connection refused"), "connection_error"),
    (httpx.ReadTimeout("timed out"), "timeout"),
])
def test_transport_errors_become_connection_errors(exc, code):
    gw, _ = client({"/ai/sentiment/analyze": exc})
    with gw, pytest.raises(GatewayConnectionError) as info:
        gw.analyze_sentiment("x")
    assert info.value.status is None and info.value.code == code
    assert isinstance(info.value.__cause__, httpx.TransportError)


def test_request_validation_happens_before_sending():
    gw, rec = client({})
    with gw:
        with pytest.raises(ValueError):
            gw.judge_battle("b-1", "house", [("dj-a", WAV)])  # a battle has two sets
        with pytest.raises(ValueError):
            gw.analyze_set(WAV, battle_id="b-1", genre="house", pin_version=0)
    assert rec.requests == []


# --- async ---------------------------------------------------------------------------------------


def test_async_client():
    async def main():
        gw, rec = async_client({
            "/ai/judge/analyze": httpx.Response(200, json=dump(sheet())),
            "/ai/sentiment/analyze": httpx.Response(200, json=dump(sentiment())),
            "/ai/recommendations/battles": ERROR_422,
            "/health": httpx.Response(503, json={"error": {"code": "x", "message": "y"}},
                                      headers={"Retry-After": "2"}),
            "/readyz": httpx.ConnectError("refused"),
        })
        async with gw:
            s = await gw.analyze_set(WAV, battle_id="b-1", genre="house", pin_version=4)
            assert isinstance(s, ScoreSheet)
            assert rec.last.headers["X-Model-Version"] == "4"
            assert multipart(rec.last)["battleId"][1] == b"b-1"

            r = await gw.analyze_sentiment("great")
            assert isinstance(r, SentimentResult)
            assert json.loads(rec.last.content) == {"text": "great", "language": None}

            with pytest.raises(InvalidRequest) as info:
                await gw.recommend_battles("u-1")
            assert (info.value.code, info.value.field) == ("audio_too_long", "audio")

            with pytest.raises(ServiceUnavailable) as unavailable:
                await gw.health()
            assert unavailable.value.retry_after == 2.0

            assert await gw.ready() is False
            rec.routes["/ai/sentiment/analyze"] = httpx.ConnectTimeout("slow")
            with pytest.raises(GatewayConnectionError):
                await gw.analyze_sentiment("x")

    asyncio.run(main())
