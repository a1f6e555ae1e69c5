"""Service-level objectives checked on a Locust run's `--json-file` output.

Why from the JSON and not the CSV: Locust writes its final `_stats.csv` before the last second of
requests is counted; the JSON holds every request. The JSON is a list with one dict
per (method, name) entry and no "Aggregated" row; `response_times` is a histogram of response times
rounded by Locust (ms below 100, then 2 significant digits) -> count, with the keys as strings.
Failed requests are counted in `num_requests` too.

The limits: no failures anywhere, and p95 < 100 ms only where the design documents promise live
analysis (chat sentiment, recommendations, every direct Triton model call). Judging a whole
uploaded set is a batch job: it is checked for failures only.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field

from djserve import api


#: Gateway endpoints that serve a live page (the design documents' "<100ms" for live analysis).
GATEWAY_REALTIME: tuple[str, ...] = (
    api.SENTIMENT_ROUTE,
    api.SENTIMENT_BATCH_ROUTE,
    api.RECOMMENDATIONS_ROUTE,
    api.LIVE_BEATS_ROUTE,
)
#: Direct Triton calls are named by model: the models behind the real-time endpoints. A judge
#: window is one step of scoring a whole uploaded set, which is not real time.
TRITON_REALTIME: tuple[str, ...] = ("sentiment", "recommender", "beat_tracker")
DEFAULT_REALTIME: tuple[str, ...] = GATEWAY_REALTIME + TRITON_REALTIME


class SloPolicy(BaseModel):
    """The limits; the defaults are the design documents'."""

    p95_ms: float = Field(100.0, gt=0, description="p95 must be strictly below this on real-time endpoints")
    max_failure_rate: float = Field(0.0, ge=0, le=1, description="failures / requests allowed per endpoint")
    realtime: tuple[str, ...] = DEFAULT_REALTIME
    """Endpoint names (Locust request names) whose latency is checked."""
    min_requests: int = Field(1, ge=1, description="a run with fewer requests in total proves nothing")


class EndpointStats(BaseModel):
    method: str
    name: str
    requests: int
    failures: int
    failure_rate: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


class SloCheck(BaseModel):
    name: str
    """What is checked, e.g. `/ai/sentiment/analyze p95`."""
    measured: float
    limit: float
    comparison: str
    """How measured relates to limit for a pass: "<", "<=" or ">="."""
    unit: str = ""
    passed: bool
    detail: str = ""
    """Context for a reader, e.g. `3 of 60 requests`."""

    @property
    def message(self) -> str:
        """`/ai/sentiment/analyze p95 142 ms > 100 ms`: the check as it stands (the rule when passed)."""
        if self.passed:
            relation = self.comparison
        else:
            relation = ">" if self.measured > self.limit else "<" if self.measured < self.limit else "="
        unit = f" {self.unit}" if self.unit else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.name} {_fmt(self.measured)}{unit} {relation} {_fmt(self.limit)}{unit}{detail}"


class SloReport(BaseModel):
    policy: SloPolicy
    endpoints: list[EndpointStats]
    checks: list[SloCheck]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[SloCheck]:
        return [c for c in self.checks if not c.passed]


def percentile(histogram: dict[float, int], count: int, fraction: float) -> float:
    """The response time that `fraction` of the `count` requests finished within.

    The same rule as Locust's own reports (walk the histogram down from the slowest bucket), so the
    numbers agree with the CSV and the web UI."""
    if count <= 0:
        return 0.0
    allowed_above = int(count * fraction)
    seen = 0
    for value in sorted(histogram, reverse=True):
        seen += histogram[value]
        if count - seen <= allowed_above:
            return float(value)
    return 0.0


def endpoint_stats(entry: dict) -> EndpointStats:
    """Summarise one entry of Locust's JSON list."""
    histogram = {float(k): int(v) for k, v in (entry.get("response_times") or {}).items()}
    requests, failures = int(entry["num_requests"]), int(entry["num_failures"])
    timed = requests - int(entry.get("num_none_requests", 0))
    if requests:
        rate = failures / requests
    else:
        rate = 1.0 if failures else 0.0
    return EndpointStats(
        method=str(entry.get("method") or ""),
        name=str(entry["name"]),
        requests=requests,
        failures=failures,
        failure_rate=rate,
        mean_ms=float(entry.get("total_response_time", 0.0)) / timed if timed > 0 else 0.0,
        p50_ms=percentile(histogram, timed, 0.50),
        p95_ms=percentile(histogram, timed, 0.95),
        p99_ms=percentile(histogram, timed, 0.99),
        max_ms=float(entry.get("max_response_time") or 0.0),
    )


def load_stats(json_file: Path) -> list[EndpointStats]:
    entries = json.loads(Path(json_file).read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{json_file}: expected Locust's JSON list of stats entries, got {type(entries).__name__}")
    return sorted((endpoint_stats(e) for e in entries), key=lambda s: (s.name, s.method))


def check(endpoints: list[EndpointStats], policy: SloPolicy | None = None) -> SloReport:
    """Every check, passed or not, with its measured value and limit."""
    policy = policy or SloPolicy()
    total = sum(e.requests for e in endpoints)
    checks = [
        SloCheck(name="requests", measured=total, limit=policy.min_requests, comparison=">=",
                 passed=total >= policy.min_requests),
    ]
    for e in endpoints:
        checks.append(
            SloCheck(
                name=f"{e.name} failure rate", measured=e.failure_rate, limit=policy.max_failure_rate,
                comparison="<=", passed=e.failure_rate <= policy.max_failure_rate,
                detail=f"{e.failures} of {e.requests} requests failed",
            )
        )
        if e.name in policy.realtime:
            checks.append(
                SloCheck(
                    name=f"{e.name} p95", measured=e.p95_ms, limit=policy.p95_ms, comparison="<", unit="ms",
                    passed=e.p95_ms < policy.p95_ms,
                )
            )
    return SloReport(policy=policy, endpoints=endpoints, checks=checks)


def check_file(json_file: Path, policy: SloPolicy | None = None) -> SloReport:
    return check(load_stats(json_file), policy)


def _fmt(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.4g}"
