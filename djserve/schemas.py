"""The gateway's HTTP contract: request and response bodies of every endpoint.

The gateway validates with these models and the client library parses with them, so a field is
named once. JSON uses camelCase like the design documents' requests (`battleId`, `userId`);
Python code uses snake_case. Every score is in [0, 1].
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# --- errors ------------------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str
    """Machine-readable: `audio_too_long`, `unknown_genre`, `triton_unavailable`, ..."""
    message: str
    field: Optional[str] = None


class ErrorBody(Schema):
    error: ErrorDetail


# --- judge -------------------------------------------------------------------------------------


class AudioData(Schema):
    base64: str = Field(description="the audio file's bytes, base64 encoded (WAV, FLAC, OGG or MP3)")
    format: Optional[str] = Field(None, description="wav | flac | ogg | mp3; sniffed from the bytes when absent")


class TrackMetadata(Schema):
    title: str = ""
    artist: str = ""
    genre: str = ""


class JudgeRequest(Schema):
    battle_id: str = Field(min_length=1, max_length=128)
    genre: str = Field(min_length=1, max_length=64)
    audio_data: AudioData
    tracks: list[TrackMetadata] = Field(default_factory=list, max_length=200)


class TempoInfo(Schema):
    bpm: float
    beats: list[float] = Field(description="beat positions in seconds from the start of the set")


class AudioInfo(Schema):
    duration_seconds: float
    sample_rate: int
    windows: int
    """How many analysis windows the set was cut into (scores are their average)."""


class ScoreSheet(Schema):
    battle_id: str
    genre: str
    genre_known: bool
    """False: the genre has no weight table and equal weights were used."""
    overall_score: float
    components: dict[str, float]
    """technical_skill, track_selection, energy_flow, creativity"""
    technical: dict[str, float]
    """bpm_accuracy, beat_alignment, transition_quality, pitch_stability"""
    creative: dict[str, float]
    """track_selection, energy_flow, genre_mixing, originality"""
    tempo: TempoInfo
    audio: AudioInfo
    model_versions: dict[str, int]
    processing_time_ms: float


class BattleSet(Schema):
    dj_id: str = Field(min_length=1, max_length=128)
    audio_data: AudioData
    tracks: list[TrackMetadata] = Field(default_factory=list, max_length=200)


class BattleRequest(Schema):
    battle_id: str = Field(min_length=1, max_length=128)
    genre: str = Field(min_length=1, max_length=64)
    sets: list[BattleSet] = Field(min_length=2, max_length=2)


class BattleResult(Schema):
    battle_id: str
    sheets: dict[str, ScoreSheet]
    """dj_id -> that DJ's score sheet"""
    winner: Optional[str]
    """dj_id of the higher overall score; None on an exact tie"""
    margin: float
    processing_time_ms: float


# --- sentiment ---------------------------------------------------------------------------------

SentimentLabel = Literal["negative", "neutral", "positive"]


class SentimentRequest(Schema):
    text: str
    language: Optional[str] = Field(None, max_length=16, description="informational; the model is multilingual")


class SentimentResult(Schema):
    sentiment: SentimentLabel
    confidence: float
    scores: dict[str, float]
    language: Optional[str] = None
    model_version: int


class SentimentBatchRequest(Schema):
    messages: list[SentimentRequest]


class SentimentBatchResult(Schema):
    results: list[SentimentResult]
    processing_time_ms: float


# --- recommendations ---------------------------------------------------------------------------


class RecommendationRequest(Schema):
    user_id: str = Field(min_length=1, max_length=128)
    limit: int = Field(10, ge=1, le=50)


class RecommendedBattle(Schema):
    battle_id: str
    title: str
    genre: str
    score: float


class Recommendations(Schema):
    user_id: str
    cold_start: bool
    """True: the user has no history, so battles are ranked by popularity (no model call)."""
    recommendations: list[RecommendedBattle]
    model_version: Optional[int]


# --- feedback ----------------------------------------------------------------------------------


class FeedbackRequest(Schema):
    """A label the platform learned after answering: graded against the prediction it names."""

    request_id: str = Field(min_length=1, max_length=64, description="the X-Request-ID of the answer being graded")
    kind: Literal["judge_score", "battle_winner", "sentiment_label", "recommendation_click"]
    value: float | str = Field(description="judge_score: the human judges' overall score in [0, 1]; battle_winner: the "
                                            "winning djId; sentiment_label: negative|neutral|positive; "
                                            "recommendation_click: the clicked battleId")
    index: int = Field(0, ge=0, le=1000, description="which message of a sentiment batch")


class FeedbackAccepted(Schema):
    request_id: str
    family: str
    version: int
    metric: str
    score: float
    """higher is better: 1/0 for accuracy, minus the absolute error, the reciprocal rank of a click"""


# --- live analysis -----------------------------------------------------------------------------


class LiveChunkRequest(Schema):
    stream_id: str = Field(min_length=1, max_length=128, description="routes every chunk of a stream to one version")
    audio_data: AudioData


class LiveBeats(Schema):
    stream_id: str
    beat_probability: float
    """Probability that the chunk has a beat at all (the beat detector)."""
    beats: list[float]
    """Beat times in seconds from the chunk's start, ascending (decoded from the per-frame beat
    activation by `djserve.beats`; empty when no frame is confidently a beat)."""
    bpm: Optional[float]
    """Tempo of those beats (searched within 60-200 BPM); null with fewer than two beats."""
    tempo_confidence: float
    """How sure that tempo is, in [0, 1]: the beats' contrast with the offbeats, discounted below
    four beats; 0 without a tempo."""
    frames: int
    duration_seconds: float
    model_version: int
    processing_time_ms: float


# --- health ------------------------------------------------------------------------------------


class Health(Schema):
    status: Literal["healthy", "degraded"]
    triton: bool
    models: dict[str, bool]
    """model family -> every version its traffic policy routes to is ready"""
    version: str


# --- models (provenance) -----------------------------------------------------------------------


class Provenance(Schema):
    kind: Literal["trained", "untrained", "checkpoint", "unknown"]
    """trained: the project's own training run; untrained: seeded reference weights; checkpoint: the user's file."""
    weights: Optional[str] = None
    registry: Optional[str] = None
    """models:/NAME/VERSION in the MLflow registry"""
    run_id: Optional[str] = None
    dataset: Optional[str] = None
    """sha256 of the generated dataset it was trained on"""
    profile: Optional[str] = None
    trained_at: Optional[str] = None
    headline: Optional[str] = None
    """the held-out metric promotion gates read (e.g. overall.r2)"""
    metrics: dict[str, float] = Field(default_factory=dict)
    """held-out metrics recorded when it was registered"""
    exported_at: Optional[str] = None


class ServedVersion(Schema):
    version: int
    role: Literal["stable", "canary"]
    share_percent: float
    provenance: Provenance


class ServedModels(Schema):
    models: dict[str, list[ServedVersion]]
    """model family -> the versions its traffic policy routes to"""
