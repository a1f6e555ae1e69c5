"""The benchmark's figures, the ratios the issue asks for, and the targets checked on them."""

from __future__ import annotations

import platform
from pathlib import Path

from pydantic import BaseModel

from loadtest.bench.http_load import EndpointPoint
from loadtest.bench.judge_inprocess import JudgeParts
from loadtest.bench.limit import ModelLimit
from loadtest.bench.startup import Startup
from loadtest.bench.triton_direct import TritonPoint
from loadtest.bench.workloads import WORKLOADS

#: gateway endpoint -> the Triton workload it sends (for the gateway's own overhead).
GATEWAY_TO_TRITON = {"sentiment": "sentiment", "sentiment_batch": "sentiment_x8", "recommendations": "recommender",
                     "sentiment_zipf": "sentiment"}


class Check(BaseModel):
    target: str
    value: float | None
    limit: float
    ok: bool
    note: str = ""


class BenchReport(BaseModel):
    machine: dict
    settings: dict
    limits: dict[str, ModelLimit]
    triton: list[TritonPoint]
    naive: list[EndpointPoint]
    gateway: list[EndpointPoint]
    judge_parts: JudgeParts
    judge_e2e: EndpointPoint
    live: list[EndpointPoint]
    startup: Startup | None
    ratios: dict[str, float | None] = {}
    checks: list[Check] = []

    # --- lookups ------------------------------------------------------------------------------

    def triton_points(self, workload: str, batching: str) -> list[TritonPoint]:
        return [p for p in self.triton if p.workload == workload and p.batching == batching]

    def endpoint_points(self, target: str, endpoint: str) -> list[EndpointPoint]:
        return [p for p in (*self.gateway, *self.naive) if p.target == target and p.endpoint == endpoint]

    # --- ratios -------------------------------------------------------------------------------

    def triton_over_limit(self, workload: str) -> float | None:
        points = self.triton_points(workload, "on")
        limit = self.limits.get(WORKLOADS[workload].model)
        if not points or not limit:
            return None
        return round(max(p.items_per_s for p in points) / limit.rows_per_s, 3)

    def batching_gain(self, workload: str) -> float | None:
        on, off = self.triton_points(workload, "on"), self.triton_points(workload, "off")
        if not on or not off:
            return None
        top_on, top_off = max(on, key=lambda p: p.concurrency), max(off, key=lambda p: p.concurrency)
        return round(top_on.items_per_s / max(top_off.items_per_s, 1e-9), 3)

    def stack_over_naive(self, endpoint: str, target: str = "gateway") -> float | None:
        """Best, over the concurrencies both were measured at, of stack / naive throughput where the
        stack's p95 is no worse than the naive service's at the same concurrency (0 if never)."""
        naive = {p.concurrency: p for p in self.endpoint_points("naive", endpoint)}
        stack = {p.concurrency: p for p in self.endpoint_points(target, endpoint)}
        common = sorted(set(naive) & set(stack))
        if not common:
            return None
        ratios = [stack[c].throughput / max(naive[c].throughput, 1e-9) for c in common if stack[c].p95_ms <= naive[c].p95_ms]
        return round(max(ratios, default=0.0), 3)

    def gain(self, endpoint: str, target: str, baseline: str) -> float | None:
        """target / baseline throughput on an endpoint at the top concurrency both were measured at."""
        a = {p.concurrency: p for p in self.endpoint_points(target, endpoint)}
        b = {p.concurrency: p for p in self.endpoint_points(baseline, endpoint)}
        common = set(a) & set(b)
        if not common:
            return None
        top = max(common)
        return round(a[top].throughput / max(b[top].throughput, 1e-9), 3)

    def gateway_overhead_ms(self, endpoint: str) -> float | None:
        g = [p for p in self.endpoint_points("gateway", endpoint) if p.concurrency == 1]
        t = [p for p in self.triton_points(GATEWAY_TO_TRITON[endpoint], "on") if p.concurrency == 1]
        return round(g[0].p50_ms - t[0].p50_ms, 3) if g and t else None

    def compute(self, live_target_streams: int) -> None:
        r: dict[str, float | None] = {}
        for w in sorted({p.workload for p in self.triton}):
            r[f"triton_over_limit.{w}"] = self.triton_over_limit(w)
            r[f"batching_on_over_off.{w}"] = self.batching_gain(w)
        for e in sorted({p.endpoint for p in self.gateway if p.endpoint in GATEWAY_TO_TRITON}):
            r[f"stack_over_naive.{e}"] = self.stack_over_naive(e)
            r[f"gateway_overhead_ms.{e}"] = self.gateway_overhead_ms(e)
        for e in sorted({p.endpoint for p in self.gateway if p.target == "gateway_unbatched"}):
            r[f"micro_batching_on_over_off.{e}"] = self.gain(e, "gateway", "gateway_unbatched")
        for e in sorted({p.endpoint for p in self.gateway if p.target == "gateway_cache"}):
            r[f"cache_on_over_off.{e}"] = self.gain(e, "gateway_cache", "gateway")
            r[f"stack_with_cache_over_naive.{e}"] = self.stack_over_naive(e, "gateway_cache")
        r["judge_e2e_over_parts"] = round(self.judge_e2e.p50_ms / self.judge_parts.sum_ms, 3)
        for p in self.live:
            r[f"live_rtf_p95.{p.concurrency}_streams"] = round(p.p95_ms / 1000, 4)
        self.ratios = r

        def check(target: str, key: str, limit: float, at_least: bool = True, note: str = "") -> None:
            v = r.get(key)
            ok = v is not None and (v >= limit if at_least else v <= limit)
            self.checks.append(Check(target=target, value=v, limit=limit, ok=ok, note=note))

        check("Triton / in-process limit >= 0.8: judge", "triton_over_limit.judge", 0.8)
        check("Triton / in-process limit >= 0.8: sentiment (8-message requests)", "triton_over_limit.sentiment_x8", 0.8)
        check("batching on / off >= 1.5 at top concurrency: sentiment", "batching_on_over_off.sentiment", 1.5)
        check("batching on / off >= 1.5 at top concurrency: recommender pairs", "batching_on_over_off.recommender_pair", 1.5)
        for endpoint in ("sentiment", "sentiment_batch", "recommendations"):
            check(f"stack / naive >= 3 at equal p95: {endpoint}", f"stack_over_naive.{endpoint}", 3.0,
                  note="same concurrency, stack p95 no worse")
        check("judge end-to-end p50 / in-process parts <= 1.25", "judge_e2e_over_parts", 1.25, at_least=False)
        check(f"live real-time factor (p95) <= 0.1 at {live_target_streams} streams",
              f"live_rtf_p95.{live_target_streams}_streams", 0.1, at_least=False)
        if self.startup:
            self.checks.append(Check(target="djserve serve ready <= 20 s", value=self.startup.seconds_to_ready, limit=20.0,
                                     ok=self.startup.seconds_to_ready <= 20.0, note=f"{self.startup.models_ready} models ready"))


def machine() -> dict:
    import os
    import time

    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}


def print_report(report: BenchReport, console) -> None:
    from rich.table import Table

    t = Table("model", "threads", "best batch", "rows/s", "batch-1 ms", title="In-process limit (ONNX Runtime)")
    for l in report.limits.values():
        t.add_row(l.model, str(l.threads), str(l.best_batch), f"{l.rows_per_s:,.0f}", f"{l.batch1_ms:.2f}")
    console.print(t)
    t = Table("workload", "batching", "conc", "req/s", "rows/s", "p50", "p95", "p99", "avg batch", "queue ms", "compute ms", "err",
              title="Triton over gRPC")
    for p in report.triton:
        t.add_row(p.workload, p.batching, str(p.concurrency), f"{p.throughput:,.0f}", f"{p.items_per_s:,.0f}", f"{p.p50_ms:.1f}",
                  f"{p.p95_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.avg_batch:.1f}", f"{p.queue_ms:.2f}", f"{p.compute_ms:.2f}", str(p.errors))
    console.print(t)
    t = Table("target", "endpoint", "conc", "req/s", "p50", "p95", "p99", "err", title="HTTP: the whole stack and the naive baseline")
    for p in [*report.gateway, report.judge_e2e, *report.live, *report.naive]:
        t.add_row(p.target, p.endpoint, str(p.concurrency), f"{p.throughput:,.1f}", f"{p.p50_ms:.1f}", f"{p.p95_ms:.1f}",
                  f"{p.p99_ms:.1f}", str(p.errors))
    console.print(t)
    jp = report.judge_parts
    console.print(f"judge parts in-process ({jp.clip_seconds:g} s clip, {jp.windows} windows): decode {jp.decode_ms} ms + "
                  f"features {jp.features_ms} ms + models {jp.models_ms} ms = {jp.sum_ms} ms; end-to-end p50 {report.judge_e2e.p50_ms} ms")
    t = Table("ratio", "value", title="Ratios (same run)")
    for k, v in report.ratios.items():
        t.add_row(k, "-" if v is None else f"{v:g}")
    console.print(t)
    t = Table("target", "value", "limit", "verdict", "note", title="Targets")
    for c in report.checks:
        t.add_row(c.target, "-" if c.value is None else f"{c.value:g}", f"{c.limit:g}", "[green]met[/]" if c.ok else "[red]missed[/]", c.note)
    console.print(t)


def plot(report: BenchReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("sentiment (one message)", [("Triton, batching on", report.triton_points("sentiment", "on")),
                                      ("Triton, batching off", report.triton_points("sentiment", "off")),
                                      ("gateway + Triton", report.endpoint_points("gateway", "sentiment")),
                                      ("naive", report.endpoint_points("naive", "sentiment"))]),
        ("recommendations (catalogue)", [("Triton, batching on", report.triton_points("recommender", "on")),
                                         ("Triton, batching off", report.triton_points("recommender", "off")),
                                         ("gateway + Triton", report.endpoint_points("gateway", "recommendations")),
                                         ("naive", report.endpoint_points("naive", "recommendations"))]),
        ("judge (one window)", [("Triton, batching on", report.triton_points("judge", "on")),
                                ("Triton, batching off", report.triton_points("judge", "off"))]),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (title, series) in zip(axes, panels):
        for label, points in series:
            if points:
                ax.plot([p.concurrency for p in points], [p.p95_ms for p in points], marker="o", label=label)
        ax.set(title=title, xlabel="concurrency", ylabel="p95 latency (ms)", xscale="log", yscale="log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"djserve bench, {report.machine['cores']} cores, {report.machine['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
