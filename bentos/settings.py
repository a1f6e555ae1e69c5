"""Gateway settings: where Triton is, where the traffic policy lives, and every input limit.

Each field can be set by `DJSERVE_GATEWAY_<FIELD>` (e.g. DJSERVE_GATEWAY_TRITON_URL=triton:8001),
except the admin token, which is `DJSERVE_ADMIN_TOKEN` (djserve.api.ADMIN_TOKEN_ENV), shared with the
MLOps side that calls /admin/*. Structured fields take JSON, e.g.
DJSERVE_GATEWAY_FAULT_INJECTION='{"judge": {"version": 3, "error_rate": 0.3}}'.
"""

from __future__ import annotations

from pathlib import Path

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from djserve.api import ADMIN_TOKEN_ENV
from djserve.settings import PROJECT_ROOT
from djserve.specs.base import BACKGROUND_NICE
from djserve.supervision import SUPERVISION_FILE

DATA = Path(__file__).parent / "data"


class FaultSpec(BaseModel):
    """A drill: calls to one version of one family are slowed and fail at a given rate."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    """The Triton version of the family that misbehaves (routed calls only, never shadow calls)."""
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    """Share of its calls answered 502 `injected_fault` (seen by the monitor like a real failure)."""
    delay_s: float = Field(0.0, ge=0.0, le=60.0)
    """Extra latency added to each of its calls (before it fails or is sent to Triton)."""


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DJSERVE_GATEWAY_")

    triton_url: str = "127.0.0.1:8001"
    """Triton's gRPC endpoint(s): `host:port`, a comma-separated list of replicas, or `dns:///name:port`
    for every address of a name (a headless Service). Calls spread over them (bentos.replicas)."""
    triton_timeout_s: float = Field(10.0, gt=0)
    """Bound on every Triton call; past it the request is answered 503 with Retry-After."""
    retry_after_s: int = Field(5, ge=1)
    repository: Path = PROJECT_ROOT / "model_repository"
    """Read for the sentiment tokenizers shipped inside each version (`sentiment/<N>/tokenizer`)."""
    policy_file: Path = PROJECT_ROOT / ".djserve" / "traffic_policy.json"
    """The traffic policy (stable/canary versions and shares); re-read when it changes."""
    drift_baseline_dir: Path = PROJECT_ROOT / ".djserve" / "drift"
    """Per-family baselines of the drift monitor, set at promotion (`<family>.json`)."""
    catalogue_file: Path = DATA / "battles.json"
    users_file: Path = DATA / "users.json"

    access_log: bool = False
    """BentoML's per-request access log line. Off by default: at load it costs ~8% of the gateway's
    CPU, and /metrics already counts every request with its latency and status."""

    # Input limits (README "Limits"); anything beyond is a 4xx naming the limit.
    max_upload_mb: float = Field(200.0, gt=0)
    max_audio_seconds: float = Field(90 * 60, gt=0)
    min_audio_seconds: float = Field(2.0, ge=0)
    max_text_chars: int = Field(2000, ge=1)
    max_batch_messages: int = Field(64, ge=1)
    max_recommendations: int = Field(50, ge=1)
    live_min_chunk_seconds: float = Field(0.3, gt=0)
    """The beat detector needs 11 frames (0.26 s at 22050 Hz / hop 512)."""
    live_max_chunk_seconds: float = Field(10.0, gt=0)
    """A live chunk is a second or so of a stream; longer audio belongs to /ai/judge/analyze."""

    # Micro-batching (bentos.batching): concurrent calls for one model version join one Triton call.
    micro_batching: bool = True
    """Join concurrent calls with the same model, version and input shapes into one Triton call (up
    to the model's max_batch_size rows). Off: every request is its own call."""
    micro_batch_in_flight: int = Field(2, ge=1)
    """Joined calls in flight per model version and input shape; calls arriving meanwhile gather
    into the next one. Nothing waits while fewer are in flight, so light load pays no latency."""

    # Row cache (bentos.row_cache): answers of single rows, in front of the micro-batching.
    row_cache_entries: int = Field(10_000, ge=0)
    """Rows (chat messages) whose answers the gateway keeps per worker, least recently used first out,
    for models whose spec has response_cache and gateway_joins (bentos.row_cache): a repeated message
    is answered without Triton, however its request was joined. ~0.8 KB a sentiment row (8 MB at the
    default). 0 turns it off."""

    # Admission control of the heavy uploads (bentos.admission): beyond it, 429 with Retry-After.
    judge_max_concurrent: int = Field(2, ge=1)
    """Sets a gateway worker decodes and scores at once (a battle counts two): each takes most of a core
    while it decodes, and chat and live beats need the rest for their 100 ms p95."""
    judge_max_queued: int = Field(8, ge=0)
    """Set uploads that wait, in arrival order, for one of those slots; one more is refused (429)."""
    judge_feature_processes: bool = True
    """Decode and featurise uploaded sets in child processes (one per judge_max_concurrent slot, ~270 MiB
    each) at a lower CPU priority, so they neither hold this worker's interpreter lock nor take the cores
    from chat and live beats (bentos.featurizer). False: in this worker's threads."""
    judge_feature_nice: int = Field(BACKGROUND_NICE, ge=0, le=19)
    """How much lower those processes' CPU priority is (nice increment); the judge's models in Triton
    run this much lower too (ModelSpec.background)."""
    judge_feature_timeout_s: float = Field(60.0, gt=0)
    """A featurizer process that takes longer than this over one window is killed and replaced; its set
    is answered 503 with Retry-After."""

    # MLOps: admin API, shadow traffic, prediction log, drills.
    admin_token: Optional[SecretStr] = Field(None, validation_alias=ADMIN_TOKEN_ENV)
    """Bearer token of every /admin/* route (env DJSERVE_ADMIN_TOKEN; a SecretStr, never logged). Unset or
    empty: the admin routes are not mounted at all (404, and absent from /openapi.json)."""
    shadow_queue_size: int = Field(64, ge=1)
    """Mirrored requests waiting for the shadow version; beyond it a mirror is dropped (and counted)."""
    shadow_concurrency: int = Field(1, ge=1)
    """Worker tasks calling the shadow version concurrently (they share the event loop with callers)."""
    predictions_dir: Path = PROJECT_ROOT / ".djserve" / "predictions"
    """Folder of the prediction and feedback logs (rotating JSON lines, djserve.prediction_log)."""
    predictions_max_mb: float = Field(16.0, gt=0)
    """Size at which a prediction (or feedback) log file is closed and a new one started."""
    predictions_keep_files: int = Field(8, ge=1)
    """Log files kept per log; older ones are deleted (disk bound: max_mb x keep_files per log)."""
    feedback_index_size: int = Field(100_000, ge=1)
    """Recent predictions feedback can name (request id -> prediction, in memory); older ids get 404."""
    feedback_index_max_mb: float = Field(32.0, gt=0)
    """... and at most this much memory for them (~230 bytes a chat prediction; bentos.predictions)."""
    supervision_file: Path = PROJECT_ROOT / ".djserve" / SUPERVISION_FILE
    """The supervisor's record of child restarts (`djserve serve`), exported as djserve_child_restarts."""
    fault_injection: dict[str, FaultSpec] = {}
    """Drills only: family -> FaultSpec (injected delays and 502s for one version). Empty in production."""

    @field_validator("admin_token")
    @classmethod
    def _empty_is_unset(cls, v: Optional[SecretStr]) -> Optional[SecretStr]:
        return None if v is None or not v.get_secret_value() else v
