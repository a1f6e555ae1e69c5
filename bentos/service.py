"""The DJ UNIVERSE gateway: a BentoML service whose HTTP API is a mounted FastAPI app.

BentoML provides the process model, /livez, /readyz (ready only when Triton and every routed model
version are) and /metrics; FastAPI gives the design documents' routes and request shapes and full
control of status codes: every refusal is a 4xx with an `ErrorBody`, Triton trouble a 503 with
Retry-After, and one bad request never disturbs the others.

Every answer carries `X-Request-ID` (bentos.request_id); every answered model request is recorded
under it (bentos.predictions), and `POST /ai/feedback` grades it later. `/admin/*` needs
`Authorization: Bearer $DJSERVE_ADMIN_TOKEN` (401 without it); a gateway started without a token does
not mount the admin routes at all (404, and absent from /openapi.json). Every path is a constant of
djserve.api.

    bentoml serve bentos.service:Gateway            # against DJSERVE_GATEWAY_TRITON_URL
    djserve serve                                   # Triton and this gateway together
"""

from __future__ import annotations

import asyncio
import base64
import functools
import binascii
import gc
import hmac
import json
import logging

import bentoml
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from threadpoolctl import threadpool_limits
from pydantic import ValidationError

from bentos import audio, judge, live, metrics, recommend, request_id, sentiment, timeouts
from bentos.admission import Admission
from bentos.openapi import errors, install, json_body, multipart_or_json_body, pinned
from bentos.backend import ModelBackend
from bentos.errors import GatewayError, InvalidInput
from bentos.featurizer import Featurizer, ProcessFeaturizer, ThreadFeaturizer
from bentos.predictions import KindMismatch, LabelMismatch, PredictionStore, UnknownRequest, digest
from bentos.provenance import served_models
from bentos.settings import GatewaySettings
from djserve import __version__
from djserve import api
from djserve.catalogue import Catalogue
from djserve.live_stats import FamilyStats
from djserve.schemas import (
    BattleRequest,
    BattleResult,
    ErrorBody,
    ErrorDetail,
    FeedbackAccepted,
    FeedbackRequest,
    Health,
    JudgeRequest,
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
from djserve.repository import ModelRepository

log = logging.getLogger("djserve.gateway")
PIN_HEADER = api.PIN_HEADER

app = FastAPI(title="DJ UNIVERSE AI gateway", version=__version__, openapi_url=api.OPENAPI_ROUTE)
install(app)  # the request bodies' schemas join the generated /openapi.json
app.add_middleware(request_id.RequestIdMiddleware)
timeouts.install()  # BentoML's per-request timer held each request's context for the whole 900 s timeout

MODEL_ERRORS = errors(400, 404, 422, 502, 503)
"""What every model endpoint can answer besides its result (404: a pinned version that is not loaded)."""
AUDIO_ERRORS = errors(400, 404, 413, 415, 422, 502, 503)
"""... and an audio upload's limits and formats."""
UPLOAD_ERRORS = errors(400, 404, 413, 415, 422, 429, 502, 503)
"""... and the heavy uploads' admission control (429 when their slots and queue are full)."""

#: Inputs larger than this are digested in a thread (sha256 releases the GIL), not on the event loop.
DIGEST_INLINE_BYTES = 1 << 20


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field)).model_dump(by_alias=True, exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


@functools.cache
def _retry_after_s() -> int:
    return GatewaySettings().retry_after_s


@app.exception_handler(GatewayError)
async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
    headers = dict(exc.headers or {})
    if exc.status == 503:
        headers["Retry-After"] = str(_retry_after_s())
    return error_response(exc.status, exc.code, exc.message, exc.field, headers or None)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _pydantic_error(exc.errors())


HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
              415: "unsupported_media_type"}
"""`ErrorBody.error.code` of the refusals Starlette makes itself (an unknown path, a method the path
has not, a multipart body it cannot parse)."""


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own refusals answer an ErrorBody too (FastAPI's default is `{"detail": ...}`), with
    their headers (Allow on a 405)."""
    code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}) or None)


@app.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id.current()
    log.exception("unexpected error on %s (request %s)", request.url.path, rid)
    # This handler runs outside the request-id middleware (Starlette's last resort): add the id here.
    headers = {api.REQUEST_ID_HEADER: rid} if rid else None
    return error_response(500, "internal_error", f"{type(exc).__name__}: the gateway failed on this request", headers=headers)


def _pydantic_error(errors) -> JSONResponse:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body",)]
    field = ".".join(loc) or None
    return error_response(422, "invalid_request", f"{field or 'body'}: {first.get('msg')}", field)


def _parse(model, data):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _AsResponse(_pydantic_error(exc.errors())) from None


class _AsResponse(Exception):
    def __init__(self, response: JSONResponse):
        self.response = response


@app.exception_handler(_AsResponse)
async def _as_response(request: Request, exc: _AsResponse) -> JSONResponse:
    return exc.response


async def _json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GatewayError("invalid_json", f"the body is not valid JSON: {exc}") from None


MAX_PIN_DIGITS = 18
"""A Triton version is an int64; longer digit strings are refused before int() (which stops at 4,300)."""


def _pin(request: Request) -> int | None:
    raw = request.headers.get(PIN_HEADER)
    if raw is None:
        return None
    value = raw.strip()
    # ASCII digits only: str.isdigit() is also true for '²' (a latin-1 header byte), which int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_PIN_DIGITS or int(value) < 1:
        shown = raw if len(raw) <= 32 else raw[:32] + "..."
        raise GatewayError("invalid_header", f"{PIN_HEADER} must be a version number >= 1, got {shown!r}", field=PIN_HEADER)
    return int(value)


def _b64(data: str, field: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError("invalid_base64", f"{field} is not valid base64", field=field) from None


async def _digest(*parts: bytes | str) -> str:
    if sum(len(p) for p in parts) > DIGEST_INLINE_BYTES:
        return await asyncio.to_thread(digest, *parts)
    return digest(*parts)


def require_admin(request: Request, gateway=Depends(bentoml.get_current_service)) -> None:
    """Every /admin/* route: `Authorization: Bearer <DJSERVE_ADMIN_TOKEN>`."""
    token = gateway.settings.admin_token
    if token is None:  # not mounted without a token (mount_admin); a 404 should it ever be reached
        raise GatewayError("not_found", f"no route {request.url.path}", status=404)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode("utf-8")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("utf-8"), expected):
        raise GatewayError(
            "unauthorized",
            f"{request.url.path} needs Authorization: Bearer <token> (the gateway's {api.ADMIN_TOKEN_ENV})",
            field="Authorization",
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )


ADMIN = [Depends(require_admin)]
"""Dependencies of every /admin/* route."""


@bentoml.service(
    name="dj-universe-gateway",
    workers=1,
    traffic={"timeout": 900},
    endpoints={"livez": api.LIVEZ_ROUTE, "readyz": api.READYZ_ROUTE},
    logging={"access": {"enabled": GatewaySettings().access_log}},
)
@bentoml.asgi_app(app, path="/")
class Gateway:
    def __init__(self) -> None:
        # The gateway's matrices are small (a second of audio); OpenBLAS's second thread only makes
        # each product wait for it to be scheduled on the busy cores, spinning meanwhile.
        threadpool_limits(1, user_api="blas")
        self._configure(GatewaySettings())
        self.featurizer.start()  # its processes warm up while this one does
        audio.warm_up()  # librosa's numba JIT: seconds on the first call, so not on a request
        # ~280,000 objects from imports and warm-up that live as long as the process: a full garbage
        # collection scans them all (~135 ms, every request of the worker waits). Never scan them.
        gc.freeze()
        log.info("gateway ready to serve; Triton at %s", self.settings.triton_url)

    def _configure(self, settings: GatewaySettings, triton_client=None) -> None:
        """Everything but the warm-up; tests build a gateway with a fake Triton client this way."""
        self.settings = settings
        self.limits = audio.AudioLimits(
            max_bytes=int(self.settings.max_upload_mb * 2**20),
            max_seconds=self.settings.max_audio_seconds,
            min_seconds=self.settings.min_audio_seconds,
        )
        self.live_limits = audio.AudioLimits(
            max_bytes=self.limits.max_bytes,
            max_seconds=self.settings.live_max_chunk_seconds,
            min_seconds=self.settings.live_min_chunk_seconds,
        )
        self.backend = ModelBackend(self.settings, triton_client)
        self.uploads = Admission("judge", self.settings.judge_max_concurrent, self.settings.judge_max_queued,
                                 self.settings.retry_after_s)
        """Sets being judged (/ai/judge/analyze and /ai/judge/battle share it)."""
        self.featurizer: Featurizer = (
            ProcessFeaturizer(self.settings.judge_max_concurrent, self.settings.judge_feature_nice,
                              self.settings.judge_feature_timeout_s, self.settings.retry_after_s)
            if self.settings.judge_feature_processes else ThreadFeaturizer()
        )
        """Where admitted sets are decoded and featurised: as many processes as there are slots."""
        self.catalogue = Catalogue.load(self.settings.catalogue_file, self.settings.users_file)
        self.restarts = metrics.RestartsExport(self.settings.supervision_file)
        self.predictions = PredictionStore.from_settings(self.settings)
        """The prediction log and the request-id index feedback is joined through."""
        mount_admin(self.settings.admin_token is not None)
        if self.settings.admin_token is None:
            log.info("the admin API (%s/*) is not mounted: set %s to enable it", api.ADMIN_PREFIX, api.ADMIN_TOKEN_ENV)

    @bentoml.on_shutdown
    def _stop_featurizer(self) -> None:
        self.featurizer.close()  # they would also exit on their own once this process's end of the pipe closes

    def _record(self, request: Request, family: str, version: int, inputs_sha256: str, outputs: dict) -> None:
        """Log one answered model request under its X-Request-ID (never raises)."""
        self.predictions.record(request_id.current(), family, version, request.url.path, inputs_sha256, outputs)

    async def __is_ready__(self) -> bool:
        self.restarts.refresh()  # probed often (and by the supervisor after every restart)
        server, families = await self.backend.readiness()
        return server and all(families.values())

    # --- judge ---------------------------------------------------------------------------

    @app.post(api.JUDGE_ANALYZE_ROUTE, response_model=ScoreSheet, responses=UPLOAD_ERRORS, openapi_extra=pinned(multipart_or_json_body(
        {"audio": {"type": "string", "format": "binary", "description": "WAV, FLAC, OGG or MP3"},
         "battleId": {"type": "string", "minLength": 1}, "genre": {"type": "string", "minLength": 1},
         "tracks": {"type": "string", "description": "JSON list of {title, artist, genre}"}},
        ["audio", "battleId", "genre"], JudgeRequest)))
    async def judge_analyze(self, request: Request) -> ScoreSheet:
        """Score one DJ set: multipart (`audio` file + battleId, genre, tracks JSON) or JSON base64."""
        self._check_size(request)
        async with self.uploads.slot():  # admitted before the body is read: a refusal costs nothing
            return await self._judge_analyze(request)

    async def _judge_analyze(self, request: Request) -> ScoreSheet:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            try:
                form = await request.form()
            except StarletteHTTPException as exc:
                raise GatewayError("invalid_multipart", f"the multipart body cannot be read: {exc.detail}") from None
            upload = form.get("audio")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("missing_audio", "multipart field 'audio' must be a file", field="audio")
            data, declared = await upload.read(), (upload.filename or "").rsplit(".", 1)[-1].lower() or None
            fields = {"battleId": form.get("battleId"), "genre": form.get("genre")}
            tracks_raw = form.get("tracks") or "[]"
            try:
                tracks = _parse(_TrackList, {"tracks": json.loads(tracks_raw)}).tracks
            except json.JSONDecodeError:
                raise InvalidInput("invalid_request", "tracks must be a JSON list", field="tracks") from None
            missing = [k for k, v in fields.items() if not v]
            if missing:
                raise InvalidInput("invalid_request", f"missing form field(s): {', '.join(missing)}", field=missing[0])
            battle_id, genre = str(fields["battleId"]), str(fields["genre"])
        else:
            body = _parse(JudgeRequest, await _json(request))
            data, declared = _b64(body.audio_data.base64, "audioData.base64"), body.audio_data.format
            battle_id, genre, tracks = body.battle_id, body.genre, body.tracks
        genre = judge.check_genre(genre)
        source = judge.open_set(data, self.limits, declared)
        sheet = await judge.score_set(self.backend, self.featurizer, source, battle_id, genre, tracks, _pin(request))
        self._record(request, "judge", sheet.model_versions["judge"], await _digest(data), {"overall_score": sheet.overall_score})
        return sheet

    @app.post(api.JUDGE_BATTLE_ROUTE, response_model=BattleResult, responses=UPLOAD_ERRORS, openapi_extra=pinned(json_body(BattleRequest)))
    async def judge_battle(self, request: Request) -> BattleResult:
        """Both sets of one battle: two score sheets, the winner and the margin."""
        self._check_size(request)
        async with self.uploads.slot(2):  # both sets are scored at once
            return await self._judge_battle(request)

    async def _judge_battle(self, request: Request) -> BattleResult:
        import time

        start = time.perf_counter()
        body = _parse(BattleRequest, await _json(request))
        genre, pin = judge.check_genre(body.genre), _pin(request)
        if body.sets[0].dj_id == body.sets[1].dj_id:
            raise InvalidInput("invalid_request", "the two sets need different djId values", field="sets")
        datas = [_b64(s.audio_data.base64, f"sets[{i}].audioData.base64") for i, s in enumerate(body.sets)]
        sources = [judge.open_set(data, self.limits, s.audio_data.format) for data, s in zip(datas, body.sets)]
        sheets = await asyncio.gather(
            *(judge.score_set(self.backend, self.featurizer, src, body.battle_id, genre, s.tracks, pin) for src, s in zip(sources, body.sets))
        )
        a, b = sheets
        margin = abs(a.overall_score - b.overall_score)
        winner = None if margin == 0 else (body.sets[0].dj_id if a.overall_score > b.overall_score else body.sets[1].dj_id)
        self._record(request, "judge", a.model_versions["judge"], await _digest(*datas), {"winner": winner})
        return BattleResult(
            battle_id=body.battle_id,
            sheets={s.dj_id: sheet for s, sheet in zip(body.sets, sheets)},
            winner=winner,
            margin=round(margin, 6),
            processing_time_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    # --- live analysis -------------------------------------------------------------------

    @app.post(api.LIVE_BEATS_ROUTE, response_model=LiveBeats, responses=AUDIO_ERRORS, openapi_extra=pinned(json_body(LiveChunkRequest)))
    async def live_beats(self, request: Request) -> LiveBeats:
        """One chunk of a live stream (JSON base64 audio, 0.3-10 s): beat probability and tempo confidence."""
        self._check_size(request)
        body = _parse(LiveChunkRequest, await _json(request))
        data = _b64(body.audio_data.base64, "audioData.base64")
        beats = await live.analyze_chunk(self.backend, data, body.audio_data.format, body.stream_id, self.live_limits, _pin(request))
        self._record(request, "beat_tracker", beats.model_version, await _digest(data),
                     {"beat_probability": beats.beat_probability, "bpm": beats.bpm})
        return beats

    # --- sentiment -----------------------------------------------------------------------

    @app.post(api.SENTIMENT_ROUTE, response_model=SentimentResult, responses=MODEL_ERRORS,
              openapi_extra=pinned(json_body(SentimentRequest)))
    async def sentiment_analyze(self, request: Request) -> SentimentResult:
        body = _parse(SentimentRequest, await _json(request))
        result = await sentiment.analyze(self.backend, [body], self.settings.max_text_chars, _pin(request))
        self._record_sentiment(request, [body.text], result.results)
        return result.results[0]

    @app.post(api.SENTIMENT_BATCH_ROUTE, response_model=SentimentBatchResult, responses=MODEL_ERRORS,
              openapi_extra=pinned(json_body(SentimentBatchRequest)))
    async def sentiment_analyze_batch(self, request: Request):
        body = _parse(SentimentBatchRequest, await _json(request))
        if not body.messages:
            raise InvalidInput("empty_batch", "messages is empty", field="messages")
        if len(body.messages) > self.settings.max_batch_messages:
            raise InvalidInput(
                "batch_too_large",
                f"{len(body.messages)} messages; the limit is {self.settings.max_batch_messages}",
                field="messages",
            )
        result = await sentiment.analyze(self.backend, body.messages, self.settings.max_text_chars, _pin(request))
        self._record_sentiment(request, [m.text for m in body.messages], result.results)
        return result.model_dump(by_alias=True)

    def _record_sentiment(self, request: Request, texts: list[str], results: list[SentimentResult]) -> None:
        versions = [r.model_version for r in results]
        self._record(request, "sentiment", versions[0], digest(*texts),
                     {"labels": [r.sentiment for r in results], "versions": versions})

    # --- recommendations -------------------------------------------------------------------

    @app.post(api.RECOMMENDATIONS_ROUTE, response_model=Recommendations, responses=MODEL_ERRORS,
              openapi_extra=pinned(json_body(RecommendationRequest)))
    async def recommendations(self, request: Request) -> Recommendations:
        body = _parse(RecommendationRequest, await _json(request))
        limit = min(body.limit, self.settings.max_recommendations)
        result = await recommend.recommend(self.backend, self.catalogue, body.user_id, limit, _pin(request))
        if not result.cold_start and result.model_version is not None:  # cold start calls no model
            self._record(request, "recommender", result.model_version, digest(body.user_id),
                         {"battle_ids": [b.battle_id for b in result.recommendations]})
        return result

    # --- feedback --------------------------------------------------------------------------

    @app.post(api.FEEDBACK_ROUTE, status_code=202, response_model=FeedbackAccepted, responses=errors(400, 404, 422),
              openapi_extra=json_body(FeedbackRequest))
    async def feedback(self, request: Request) -> JSONResponse:
        """A label the platform learned later (the judges' score, the battle's winner, a chat
        message's sentiment, a click), graded against the prediction its requestId names."""
        body = _parse(FeedbackRequest, await _json(request))
        try:
            rec = self.predictions.grade(body.request_id, body.kind, body.value, body.index)
        except UnknownRequest as exc:
            raise GatewayError("unknown_request_id", str(exc), field="requestId", status=404) from None
        except LabelMismatch as exc:
            raise InvalidInput("label_mismatch", str(exc), field="kind" if isinstance(exc, KindMismatch) else None) from None
        self.predictions.append_feedback(rec)
        try:
            self.backend.monitor.add_label(rec.family, rec.version, rec.metric, rec.score)
        except Exception:  # noqa: BLE001 - the label is logged; the live stats are best effort
            log.exception("could not add a %s label to the live stats", rec.family)
        accepted = FeedbackAccepted(request_id=rec.request_id, family=rec.family, version=rec.version,
                                    metric=rec.metric, score=rec.score)
        return JSONResponse(accepted.model_dump(by_alias=True), status_code=202)

    # --- MLOps: the admin routes are on `admin_api` below ---------------------------------

    # --- models ---------------------------------------------------------------------------

    @app.get(api.MODELS_ROUTE, response_model=ServedModels)
    async def models(self) -> ServedModels:
        """Every version the traffic policy routes to, with where its weights come from (training
        run, dataset, held-out metrics; or seeded untrained weights; or the user's checkpoint)."""
        return served_models(self.backend.policies.current(), ModelRepository(self.settings.repository))

    # --- health --------------------------------------------------------------------------

    @app.get(api.HEALTH_ROUTE, response_model=Health, responses={503: {"model": Health, "description": "degraded"}})
    async def health(self) -> JSONResponse:
        """The design documents' checker calls this: 200 healthy, 503 degraded."""
        server, families = await self.backend.readiness()
        healthy = server and all(families.values())
        body = Health(status="healthy" if healthy else "degraded", triton=server, models=families, version=__version__)
        return JSONResponse(body.model_dump(by_alias=True), status_code=200 if healthy else 503)

    def _check_size(self, request: Request) -> None:
        length = request.headers.get("content-length")
        # base64 inflates by 4/3: allow for it, open_audio checks the decoded bytes exactly.
        limit = int(self.limits.max_bytes * 4 / 3) + 65536
        if length and length.isdigit() and int(length) > limit:
            raise GatewayError(
                "audio_too_large", f"request body of {int(length)} bytes exceeds {limit} bytes", field="audio", status=413
            )


class _GatewayService(type(Gateway)):  # type: ignore[misc]
    """BentoML's service object, whose server app is wrapped in the request-id middleware.

    `add_asgi_middleware` would put it inside BentoML's TimeoutMiddleware and MaxConcurrencyMiddleware,
    whose own answers (504 past `traffic.timeout`, 429 past `traffic.max_concurrency`) and Starlette's
    last-resort 500 are sent around it, without an id. Wrapping the app `to_asgi()` returns (what
    BentoML's worker hands to uvicorn) puts it outside all of them: every answer of the server
    carries `X-Request-ID`, /livez, /readyz and /metrics included. The mounted app's own instance
    (installed above, for the app alone under a TestClient) reuses the outer one's id."""

    __slots__ = ()

    def to_asgi(self, is_main: bool = True):
        return request_id.RequestIdMiddleware(super().to_asgi(is_main))


Gateway.__class__ = _GatewayService  # the same object (and attrs layout), one method more


# --- MLOps: the admin API -------------------------------------------------------------------------

admin_api = APIRouter(dependencies=ADMIN)
"""Every /admin/* route. On the app only while the gateway has an admin token (`mount_admin`)."""


@admin_api.get(api.STATS_ROUTE, response_model=FamilyStats, responses=errors(401, 404, 422))
async def admin_stats(family: str, gateway=Depends(bentoml.get_current_service)) -> FamilyStats:
    """Live outcomes per version (totals since start, the last 1,000 in detail), the platform's
    labels, and the shadow comparison: what canary gates are computed from. Admin token needed."""
    policy = gateway.backend.policies.current()
    if family not in policy.families:
        raise GatewayError("unknown_family", f"no model family {family!r}", field="family", status=404)
    return gateway.backend.monitor.stats(family, policy.families[family])


_admin_mounted: list = []
"""What including `admin_api` added to the app's routes (empty while it is not mounted)."""


def mount_admin(enabled: bool) -> None:
    """Mount the admin API (a gateway with an admin token) or take it off the app (without one: /admin/*
    answers 404 like any unknown path and is absent from /openapi.json). The gateway configures it
    once per process; tests configure gateways one after the other, hence both ways."""
    if enabled and not _admin_mounted:
        before = list(app.router.routes)
        app.include_router(admin_api)
        _admin_mounted.extend(r for r in app.router.routes if r not in before)
    elif not enabled and _admin_mounted:
        for route in _admin_mounted:
            app.router.routes.remove(route)
        _admin_mounted.clear()
    else:
        return
    app.openapi_schema = None  # regenerated, with or without them, on the next /openapi.json


class _TrackList(TrackMetadata.__base__):  # type: ignore[misc]
    tracks: list[TrackMetadata] = []
