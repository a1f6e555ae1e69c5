"""What the gateway knows about each served version's live traffic: the `/admin/stats` answer.

The contract between the gateway (which observes every request, every mirrored shadow request and
every label the platform sends back) and MLOps (whose gates and `djserve status` read it). Totals
count since the gateway started, so a reader takes differences between two reads for "since the
canary step began"; the lists are the most recent observations (at most WINDOW), oldest first.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field

WINDOW = 1000
"""Recent observations kept per version (and per shadow comparison)."""


class LabelStats(BaseModel):
    """Platform feedback joined to this version's predictions (`POST /ai/feedback`)."""

    total: int = 0
    """labels received since the gateway started"""
    metric: Optional[str] = None
    """what a label's score means: "accuracy" (1 right, 0 wrong), "neg_abs_error" (minus the
    absolute error of a score), "reciprocal_rank" (of the clicked item)"""
    scores: list[float] = []
    """recent per-label quality scores, higher is better"""
    mean: Optional[float] = None


class VersionStats(BaseModel):
    version: int
    requests_total: int = Field(0, ge=0, description="answered requests since the gateway started, failed ones included")
    errors_total: int = Field(0, ge=0, description="of which the version failed (5xx-class)")
    count: int = Field(0, ge=0, description="requests in the recent window")
    errors: int = Field(0, ge=0, description="failures in the recent window")
    error_rate: float = 0.0
    latency_p50_s: Optional[float] = None
    latency_p95_s: Optional[float] = None
    latencies_s: list[float] = []
    """recent latencies, oldest first (failed requests included)"""
    values: list[float] = []
    """recent output summaries of successful requests, oldest first (one float per request)"""
    labels: LabelStats = LabelStats()


class ShadowStats(BaseModel):
    """Paired comparison of the shadow with the stable version on identical requests."""

    stable: int
    shadow: int
    mirrored_total: int = 0
    """requests mirrored to the shadow and answered by it (or failed) since the gateway started"""
    dropped_total: int = 0
    """requests not mirrored because the shadow queue was full (the caller is never slowed)"""
    errors_total: int = 0
    """mirrored requests the shadow failed"""
    pairs: int = 0
    """paired outcomes in the recent window"""
    agreement: Optional[float] = None
    """share of pairs whose decision agrees: the sentiment label, the top recommendation; for scores,
    the order of consecutive pairs (who wins a battle between the two sets)"""
    diff_mean: Optional[float] = None
    """mean of shadow minus stable output summary"""
    diff_quantiles: dict[str, float] = {}
    """p05, p50, p95 of the difference"""
    latency_p95_s: dict[str, Optional[float]] = {}
    """"stable" and "shadow" p95 latency on the paired requests"""
    stable_values: list[float] = []
    shadow_values: list[float] = []
    """the recent pairs' summaries, index-aligned"""


class FamilyStats(BaseModel):
    family: str
    versions: dict[str, VersionStats] = {}
    """version number (as a string: a JSON key) -> its live stats"""
    shadow: Optional[ShadowStats] = None

    def version(self, v: int) -> VersionStats:
        """The version's stats; an unseen version has none yet (all zero)."""
        return self.versions.get(str(v)) or VersionStats(version=v)
