"""Canary gates, evaluated from the gateway's live windows of the stable and the canary version.

A verdict needs `min_requests` canary requests; then the canary fails if its error rate exceeds
the stable's by more than `max_error_rate_increase`, if its p95 latency exceeds
`max_p95_ratio` x the stable's (plus `p95_slack_s` for noise on tiny latencies), or if its
output distribution differs from the stable's on the same traffic: two-sample KS test,
p < `ks_alpha` (the design documents' p < 0.05 rule, S0:1130-1150).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pydantic import BaseModel
from scipy.stats import ks_2samp


class GateConfig(BaseModel):
    min_requests: int = 200
    max_error_rate_increase: float = 0.01
    max_p95_ratio: float = 1.5
    p95_slack_s: float = 0.01
    ks_alpha: float = 0.05


@dataclass
class GateResult:
    verdict: str
    """"pass", "fail" or "wait" (not enough canary requests yet)."""
    reasons: list[str]
    canary_requests: int
    stable_requests: int
    error_rate: dict[str, float]
    p95_s: dict[str, float]
    ks_statistic: float | None
    ks_p_value: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate(stats: dict, stable: int, canary: int, cfg: GateConfig) -> GateResult:
    """`stats` is the gateway's /admin/stats?family=<family> answer (PredictionMonitor.stats)."""
    versions = stats.get("versions", {})
    s, c = versions.get(str(stable), {}), versions.get(str(canary), {})
    n_c, n_s = int(c.get("count", 0)), int(s.get("count", 0))
    rates = {"stable": float(s.get("error_rate", 0.0)), "canary": float(c.get("error_rate", 0.0))}
    p95 = {"stable": float(s.get("latency_p95_s") or 0.0), "canary": float(c.get("latency_p95_s") or 0.0)}
    if n_c < cfg.min_requests or n_s < cfg.min_requests:
        return GateResult("wait", [f"{n_c} canary / {n_s} stable requests, need {cfg.min_requests} each"], n_c, n_s, rates, p95, None, None)
    reasons = []
    if rates["canary"] > rates["stable"] + cfg.max_error_rate_increase:
        reasons.append(f"error rate {rates['canary']:.3f} vs stable {rates['stable']:.3f}")
    if p95["canary"] > cfg.max_p95_ratio * p95["stable"] + cfg.p95_slack_s:
        reasons.append(f"p95 latency {p95['canary'] * 1000:.1f} ms vs stable {p95['stable'] * 1000:.1f} ms")
    ks = ks_2samp(c.get("values", []), s.get("values", [])) if c.get("values") and s.get("values") else None
    if ks is not None and ks.pvalue < cfg.ks_alpha:
        reasons.append(f"output distribution shifted (KS {ks.statistic:.3f}, p={ks.pvalue:.2g})")
    return GateResult(
        "fail" if reasons else "pass",
        reasons,
        n_c,
        n_s,
        rates,
        p95,
        None if ks is None else float(ks.statistic),
        None if ks is None else float(ks.pvalue),
    )
