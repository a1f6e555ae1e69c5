"""Gateway settings: where Triton is, where the traffic policy lives, and every input limit.

Each field can be set by `DJSERVE_GATEWAY_<FIELD>` (e.g. DJSERVE_GATEWAY_TRITON_URL=triton:8001).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from djserve.settings import PROJECT_ROOT

DATA = Path(__file__).parent / "data"


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DJSERVE_GATEWAY_")

    triton_url: str = "127.0.0.1:8001"
    """Triton's gRPC endpoint (host:port)."""
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
