"""What one `djserve bench` run measures; every field can come from `DJSERVE_BENCH_<FIELD>`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from loadtest.bench.workloads import WORKLOADS


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DJSERVE_BENCH_")

    concurrencies: list[int] = [1, 4, 16]
    seconds: float = Field(8.0, gt=0)
    """Measured seconds per load point (after the warm-up)."""
    warmup_s: float = Field(1.0, ge=0)
    limit_seconds: float = Field(1.0, gt=0)
    """Seconds per batch size of the in-process limit."""
    workloads: list[str] = list(WORKLOADS)
    gateway_endpoints: list[str] = ["sentiment", "sentiment_batch", "recommendations", "sentiment_zipf"]
    """Measured on the naive service and the gateway (Triton's response cache and the gateway's row
    cache off), then `cached_endpoints` again with both on, `unbatched_endpoints` on a second gateway
    without micro-batching."""
    cached_endpoints: list[str] = ["sentiment_zipf"]
    unbatched_endpoints: list[str] = ["sentiment", "recommendations"]
    judge_clip_seconds: float = Field(30.0, gt=2)
    judge_seconds: float = Field(20.0, gt=0)
    live_streams: list[int] = [1, 4, 8, 16]
    live_seconds: float = Field(10.0, gt=0)
    live_target_streams: int = 8
    """The stream count at which the real-time-factor target is checked."""
    startup: bool = True
    seed: int = 0

    @classmethod
    def smoke(cls) -> "BenchSettings":
        """Every section once, as short as it can be: checks the script, not the figures."""
        return cls(
            concurrencies=[1, 4], seconds=1.0, warmup_s=0.2, limit_seconds=0.2, judge_seconds=1.0,
            live_streams=[1, 2], live_seconds=2.0, live_target_streams=2,
        )


def default_out_dir(root: Path) -> Path:
    import time

    return root / "bench" / time.strftime("%Y%m%d-%H%M%S")
