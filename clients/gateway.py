"""Call the DJ UNIVERSE gateway over HTTP: typed requests and responses from `djserve.schemas`.

    from clients.gateway import GatewayClient, InvalidRequest, ServiceUnavailable

    with GatewayClient("http://127.0.0.1:3000") as gw:
        sheet = gw.analyze_set(Path("set.wav"), battle_id="b-42", genre="house")
        sheet.overall_score, sheet.components["technical_skill"], sheet.model_versions
        result = gw.judge_battle("b-42", "house", [("dj-a", Path("a.wav")), ("dj-b", b"RIFF...")])
        result.winner
        gw.analyze_sentiment("great set!").sentiment            # "positive"
        gw.recommend_battles("user-1", limit=5).recommendations

    try:
        gw.analyze_set(data, battle_id="b-42", genre="house", pin_version=2)   # X-Model-Version: 2
    except InvalidRequest as e:          # any 4xx: e.code, e.message, e.field from the gateway
        ...
    except ServiceUnavailable as e:      # 503: e.retry_after seconds (or None)
        ...

`AsyncGatewayClient` has the same methods as coroutines (`async with AsyncGatewayClient() as gw:
sheet = await gw.analyze_set(...)`). Every failure is a `GatewayError`: `InvalidRequest` (4xx),
`ServiceUnavailable` (503), `GatewayConnectionError` (network failure or timeout, status None), and
`GatewayError` itself for other statuses or a response that does not match the schema. A request
that fails the schema's validation before it is sent raises pydantic's `ValidationError`.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import httpx
from pydantic import BaseModel, ValidationError

from djserve.api import (
    FEEDBACK_ROUTE,
    HEALTH_ROUTE,
    JUDGE_ANALYZE_ROUTE,
    JUDGE_BATTLE_ROUTE,
    LIVE_BEATS_ROUTE,
    MODELS_ROUTE,
    PIN_HEADER,
    READYZ_ROUTE,
    RECOMMENDATIONS_ROUTE,
    REQUEST_ID_HEADER,
    SENTIMENT_BATCH_ROUTE,
    SENTIMENT_ROUTE,
)
from djserve.schemas import (
    AudioData,
    BattleRequest,
    BattleResult,
    BattleSet,
    ErrorBody,
    FeedbackAccepted,
    FeedbackRequest,
    Health,
    LiveBeats,
    LiveChunkRequest,
    RecommendationRequest,
    Recommendations,
    ScoreSheet,
    SentimentBatchRequest,
    SentimentBatchResult,
    SentimentRequest,
    SentimentResult,
    ServedModels,
    TrackMetadata,
)

__all__ = [
    "AsyncGatewayClient",
    "GatewayClient",
    "GatewayConnectionError",
    "GatewayError",
    "InvalidRequest",
    "ServiceUnavailable",
    "PIN_HEADER",
    "REQUEST_ID_HEADER",
]

DEFAULT_BASE_URL = "http://127.0.0.1:3000"

Audio = Union[bytes, bytearray, memoryview, str, Path]
"""Audio bytes, or the path of an audio file (a `str` is a path)."""
Track = Union[TrackMetadata, Mapping[str, Any]]



# --- errors --------------------------------------------------------------------------------------


class GatewayError(Exception):
    """The gateway did not answer the call with a result."""

    def __init__(self, message: str, *, status: Optional[int] = None, code: str = "gateway_error",
                 field: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
                f"message={self.message!r}, field={self.field!r})")


class InvalidRequest(GatewayError):
    """A 4xx: the request was refused (bad audio, unknown field, ...); retrying will not help."""


class ServiceUnavailable(GatewayError):
    """A 503: the gateway or Triton is not ready or overloaded; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, status: Optional[int] = 503, code: str = "service_unavailable",
                 field: Optional[str] = None, retry_after: Optional[float] = None):
        super().__init__(message, status=status, code=code, field=field)
        self.retry_after = retry_after


class GatewayConnectionError(GatewayError):
    """The gateway could not be reached, or did not answer in time (status None)."""


# --- request building (shared by both clients) ---------------------------------------------------

_FORMATS = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
_SUFFIXES = {"wave": "wav", "oga": "ogg", "opus": "ogg"}


def _sniff(data: bytes) -> Optional[str]:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _read_audio(audio: Audio) -> tuple[bytes, str, Optional[str]]:
    """(bytes, filename, format or None)."""
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        fmt = _sniff(data)
        return data, f"audio.{fmt or 'bin'}", fmt
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        data = path.read_bytes()
        suffix = path.suffix.lower().lstrip(".")
        suffix = _SUFFIXES.get(suffix, suffix)
        fmt = suffix if suffix in _FORMATS else _sniff(data)
        return data, path.name, fmt
    raise TypeError(f"audio must be bytes or a path, got {type(audio).__name__}")


def _tracks(tracks: Optional[Sequence[Track]]) -> list[TrackMetadata]:
    return [t if isinstance(t, TrackMetadata) else TrackMetadata.model_validate(t) for t in tracks or ()]


def _pin(pin_version: Optional[int]) -> dict[str, str]:
    if pin_version is None:
        return {}
    if isinstance(pin_version, bool) or not isinstance(pin_version, int) or pin_version < 1:
        raise ValueError(f"pin_version must be an integer >= 1, got {pin_version!r}")
    return {PIN_HEADER: str(pin_version)}


def _with_request_id(call: "_Call", request_id: Optional[str]) -> "_Call":
    """Send our own X-Request-ID, so a label learned later can name this answer (`feedback`)."""
    if request_id:
        call.kwargs["headers"] = {**call.kwargs.get("headers", {}), REQUEST_ID_HEADER: request_id}
    return call


def _feedback(request_id: str, kind: str, value: Union[float, str], index: int) -> "_Call":
    body = FeedbackRequest(request_id=request_id, kind=kind, value=value, index=index)
    return _Call("POST", FEEDBACK_ROUTE, FeedbackAccepted, {"json": _body(body)})


def _body(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


@dataclass
class _Call:
    method: str
    path: str
    model: Optional[type[BaseModel]]
    kwargs: dict[str, Any] = field(default_factory=dict)
    ok_statuses: tuple[int, ...] = ()
    """Non-2xx statuses whose body is still the model (a degraded /health answers 503)."""


def _analyze_set(audio: Audio, battle_id: str, genre: str, tracks: Optional[Sequence[Track]],
                 pin_version: Optional[int]) -> _Call:
    data, filename, fmt = _read_audio(audio)
    track_list = [t.model_dump(mode="json", by_alias=True) for t in _tracks(tracks)]
    form = {"battleId": battle_id, "genre": genre, "tracks": json.dumps(track_list)}
    files = {"audio": (filename, data, _FORMATS.get(fmt or "", "application/octet-stream"))}
    return _Call("POST", JUDGE_ANALYZE_ROUTE, ScoreSheet,
                 {"data": form, "files": files, "headers": _pin(pin_version)})


def _judge_battle(battle_id: str, genre: str, sets: Sequence[tuple], pin_version: Optional[int]) -> _Call:
    battle_sets = []
    for entry in sets:
        dj_id, audio, *rest = entry
        data, _, fmt = _read_audio(audio)
        battle_sets.append(BattleSet(
            dj_id=dj_id,
            audio_data=AudioData(base64=base64.b64encode(data).decode("ascii"), format=fmt),
            tracks=_tracks(rest[0] if rest else None),
        ))
    request = BattleRequest(battle_id=battle_id, genre=genre, sets=battle_sets)
    return _Call("POST", JUDGE_BATTLE_ROUTE, BattleResult, {"json": _body(request), "headers": _pin(pin_version)})


def _sentiment(text: str, language: Optional[str]) -> _Call:
    return _Call("POST", SENTIMENT_ROUTE, SentimentResult,
                 {"json": _body(SentimentRequest(text=text, language=language))})


def _sentiment_batch(texts: Sequence[Union[str, SentimentRequest]]) -> _Call:
    messages = [t if isinstance(t, SentimentRequest) else SentimentRequest(text=t) for t in texts]
    return _Call("POST", SENTIMENT_BATCH_ROUTE, SentimentBatchResult,
                 {"json": _body(SentimentBatchRequest(messages=messages))})


def _recommend(user_id: str, limit: int) -> _Call:
    return _Call("POST", RECOMMENDATIONS_ROUTE, Recommendations,
                 {"json": _body(RecommendationRequest(user_id=user_id, limit=limit))})


def _live_beats(audio: Audio, stream_id: str) -> _Call:
    data, _, fmt = _read_audio(audio)
    request = LiveChunkRequest(stream_id=stream_id, audio_data=AudioData(base64=base64.b64encode(data).decode("ascii"), format=fmt))
    return _Call("POST", LIVE_BEATS_ROUTE, LiveBeats, {"json": _body(request)})


def _health() -> _Call:
    return _Call("GET", HEALTH_ROUTE, Health, ok_statuses=(503,))


def _models() -> _Call:
    return _Call("GET", MODELS_ROUTE, ServedModels)


# --- response handling -----------------------------------------------------------------------------


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds)


def _error(response: httpx.Response) -> GatewayError:
    status = response.status_code
    code, field_ = f"http_{status}", None
    message = ""
    try:
        detail = ErrorBody.model_validate_json(response.content).error
        code, message, field_ = detail.code, detail.message, detail.field
    except (ValidationError, ValueError):
        message = response.text.strip()[:2000] or response.reason_phrase or f"HTTP {status}"
    if status == 503:
        return ServiceUnavailable(message, status=status, code=code, field=field_,
                                  retry_after=_retry_after(response.headers.get("retry-after")))
    if 400 <= status < 500:
        return InvalidRequest(message, status=status, code=code, field=field_)
    return GatewayError(message, status=status, code=code, field=field_)


def _result(call: _Call, response: httpx.Response) -> Any:
    status = response.status_code
    if not (200 <= status < 300) and status not in call.ok_statuses:
        raise _error(response)
    if call.model is None:
        return response
    try:
        return call.model.model_validate_json(response.content)
    except ValidationError as e:
        if status in call.ok_statuses:
            raise _error(response) from None
        raise GatewayError(f"{call.method} {call.path}: the response is not a {call.model.__name__}: {e}",
                           status=status, code="invalid_response") from e


def _connection_error(call: _Call, e: httpx.TransportError) -> GatewayConnectionError:
    code = "timeout" if isinstance(e, httpx.TimeoutException) else "connection_error"
    return GatewayConnectionError(f"{call.method} {call.path}: {type(e).__name__}: {e}", code=code)


def _client_kwargs(base_url: str, timeout: float, headers: Optional[Mapping[str, str]]) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "timeout": timeout,
        "headers": {"User-Agent": "djserve-gateway-client", "Accept": "application/json", **(headers or {})},
    }


# --- clients ---------------------------------------------------------------------------------------


class GatewayClient:
    """Synchronous client of the gateway (one pooled httpx.Client; thread-safe)."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0,
                 headers: Optional[Mapping[str, str]] = None, *, transport: Optional[httpx.BaseTransport] = None):
        self.base_url = base_url
        self._http = httpx.Client(**_client_kwargs(base_url, timeout, headers), transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, call: _Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **call.kwargs)
        except httpx.TransportError as e:
            raise _connection_error(call, e) from e
        return _result(call, response)

    def analyze_set(self, audio: Audio, *, battle_id: str, genre: str, tracks: Optional[Sequence[Track]] = None,
                    pin_version: Optional[int] = None, request_id: Optional[str] = None) -> ScoreSheet:
        """Score one DJ set (multipart upload to POST /ai/judge/analyze)."""
        return self._send(_with_request_id(_analyze_set(audio, battle_id, genre, tracks, pin_version), request_id))

    def judge_battle(self, battle_id: str, genre: str, sets: Sequence[tuple], pin_version: Optional[int] = None,
                     request_id: Optional[str] = None) -> BattleResult:
        """Score both sets of a battle: `sets` is [(dj_id, audio), (dj_id, audio)], optionally
        (dj_id, audio, tracks). POST /ai/judge/battle with the audio base64 encoded."""
        return self._send(_with_request_id(_judge_battle(battle_id, genre, sets, pin_version), request_id))

    def analyze_sentiment(self, text: str, language: Optional[str] = None, request_id: Optional[str] = None) -> SentimentResult:
        return self._send(_with_request_id(_sentiment(text, language), request_id))

    def analyze_sentiment_batch(self, texts: Sequence[Union[str, SentimentRequest]],
                                request_id: Optional[str] = None) -> SentimentBatchResult:
        return self._send(_with_request_id(_sentiment_batch(texts), request_id))

    def recommend_battles(self, user_id: str, limit: int = 10, request_id: Optional[str] = None) -> Recommendations:
        return self._send(_with_request_id(_recommend(user_id, limit), request_id))

    def live_beats(self, audio: Audio, stream_id: str, request_id: Optional[str] = None) -> LiveBeats:
        """One chunk (0.3-10 s) of a live stream: beat probability, beat times, tempo and tempo confidence."""
        return self._send(_with_request_id(_live_beats(audio, stream_id), request_id))

    def feedback(self, request_id: str, kind: str, value: Union[float, str], index: int = 0) -> FeedbackAccepted:
        """A label learned after the answer with this X-Request-ID: `judge_score` (the judges' overall
        score in [0, 1]), `battle_winner` (djId), `sentiment_label`, `recommendation_click` (battleId)."""
        return self._send(_feedback(request_id, kind, value, index))

    def health(self) -> Health:
        """GET /health; a degraded gateway's 503 with a Health body is returned, not raised."""
        return self._send(_health())

    def models(self) -> ServedModels:
        """The versions each family serves and where their weights come from (training run, metrics)."""
        return self._send(_models())

    def ready(self) -> bool:
        """GET /readyz answered 200; False for any other status or when the gateway cannot be reached."""
        try:
            return self._http.get(READYZ_ROUTE).status_code == 200
        except httpx.TransportError:
            return False


class AsyncGatewayClient:
    """Asynchronous client of the gateway (one pooled httpx.AsyncClient); the same methods as coroutines."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, timeout: float = 60.0,
                 headers: Optional[Mapping[str, str]] = None, *,
                 transport: Optional[httpx.AsyncBaseTransport] = None):
        self.base_url = base_url
        self._http = httpx.AsyncClient(**_client_kwargs(base_url, timeout, headers), transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncGatewayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def _send(self, call: _Call) -> Any:
        try:
            response = await self._http.request(call.method, call.path, **call.kwargs)
        except httpx.TransportError as e:
            raise _connection_error(call, e) from e
        return _result(call, response)

    async def analyze_set(self, audio: Audio, *, battle_id: str, genre: str, tracks: Optional[Sequence[Track]] = None,
                          pin_version: Optional[int] = None, request_id: Optional[str] = None) -> ScoreSheet:
        """Score one DJ set (multipart upload to POST /ai/judge/analyze). A path is read synchronously."""
        return await self._send(_with_request_id(_analyze_set(audio, battle_id, genre, tracks, pin_version), request_id))

    async def judge_battle(self, battle_id: str, genre: str, sets: Sequence[tuple],
                           pin_version: Optional[int] = None, request_id: Optional[str] = None) -> BattleResult:
        return await self._send(_with_request_id(_judge_battle(battle_id, genre, sets, pin_version), request_id))

    async def analyze_sentiment(self, text: str, language: Optional[str] = None,
                                request_id: Optional[str] = None) -> SentimentResult:
        return await self._send(_with_request_id(_sentiment(text, language), request_id))

    async def analyze_sentiment_batch(self, texts: Sequence[Union[str, SentimentRequest]],
                                      request_id: Optional[str] = None) -> SentimentBatchResult:
        return await self._send(_with_request_id(_sentiment_batch(texts), request_id))

    async def recommend_battles(self, user_id: str, limit: int = 10, request_id: Optional[str] = None) -> Recommendations:
        return await self._send(_with_request_id(_recommend(user_id, limit), request_id))

    async def live_beats(self, audio: Audio, stream_id: str, request_id: Optional[str] = None) -> LiveBeats:
        return await self._send(_with_request_id(_live_beats(audio, stream_id), request_id))

    async def feedback(self, request_id: str, kind: str, value: Union[float, str], index: int = 0) -> FeedbackAccepted:
        return await self._send(_feedback(request_id, kind, value, index))

    async def health(self) -> Health:
        return await self._send(_health())

    async def models(self) -> ServedModels:
        return await self._send(_models())

    async def ready(self) -> bool:
        try:
            return (await self._http.get(READYZ_ROUTE)).status_code == 200
        except httpx.TransportError:
            return False
