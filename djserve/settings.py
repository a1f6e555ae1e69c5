"""Project settings, overridable by environment variables (DJSERVE_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DJSERVE_")

    repository: Path = PROJECT_ROOT / "model_repository"
    """The Triton model repository (standard layout; runs unchanged on the NGC container)."""
    state_dir: Path = PROJECT_ROOT / ".djserve"
    """Generated state: the assembled Triton backends, server logs."""


def settings() -> Settings:
    return Settings()
