"""Placement sweep: instances x intra-op threads x queue delay, per model, on a running Triton.

Each placement is loaded as a config override of the model (explicit model control; response cache
off) and measured at one concurrency with the model's workload; the fastest is chosen and compared
with the placement its spec renders today. `djserve bench --profile sweep` runs it for the
reference models; the production-size profile runs it for its sentiment model.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from djserve import specs
from djserve.repository.config import build_config
from loadtest.bench import triton_direct
from loadtest.bench.triton_direct import Placement, TritonPoint
from loadtest.bench.workloads import WORKLOADS, Workload

Step = Callable[[str], None]


class SweepGrid(BaseModel):
    instances: list[int] = [1, 2]
    threads: list[int] = [1, 2]
    delays_us: list[int] = [0, 2000]
    concurrency: int = 16
    seconds: float = 8.0
    warmup_s: float = 2.0

    def placements(self) -> list[Placement]:
        return [Placement(instances=n, threads=t, delay_us=d) for n, t, d in itertools.product(self.instances, self.threads, self.delays_us)]


class SweepPoint(BaseModel):
    placement: Placement
    point: TritonPoint


class ModelSweep(BaseModel):
    workload: str
    points: list[SweepPoint]
    chosen: Placement
    spec: Placement
    """What the model's spec renders today."""

    @property
    def chosen_over_spec(self) -> float | None:
        by = {p.placement: p.point.items_per_s for p in self.points}
        return round(by[self.chosen] / by[self.spec], 3) if self.spec in by and by[self.spec] else None


def spec_placement(model: str) -> Placement:
    cfg = build_config(specs.get(model))
    return Placement(instances=cfg.instance_group[0].count, threads=int(cfg.parameters["intra_op_thread_count"].string_value),
                     delay_us=cfg.dynamic_batching.max_queue_delay_microseconds)


def sweep_model(triton, w: Workload, grid: SweepGrid, step: Step, seed: int = 0) -> ModelSweep:
    """`triton`: a running TritonServer of the stack (its URLs and admin headers)."""
    points = []
    for placement in grid.placements():
        step(f"sweep {w.name}: {placement}")
        triton_direct.reload_model(triton.http_url, w.model, "on", cache=False, headers=triton.settings.admin_headers(), placement=placement)
        point = asyncio.run(triton_direct.measure_model(triton.grpc_url, w, "on", [grid.concurrency], grid.seconds, grid.warmup_s, seed))[0]
        points.append(SweepPoint(placement=placement, point=point))
    chosen = max(points, key=lambda p: p.point.items_per_s).placement
    return ModelSweep(workload=w.name, points=points, chosen=chosen, spec=spec_placement(w.model))


def run_sweeps(repository: Path, out: Path, grid: SweepGrid, workloads: list[str], step: Step) -> list[ModelSweep]:
    """Every workload's model swept on one Triton of the stack (the gateway idles)."""
    from djserve.stack import Stack

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="djserve-sweep-") as tmp:
        with Stack.local(repository, Path(tmp), log_dir=out, log=step) as stack:
            return [sweep_model(stack.tritons[0], WORKLOADS[name], grid, step) for name in workloads]


def print_sweeps(sweeps: list[ModelSweep], concurrency: int, console) -> None:
    from rich.table import Table

    for s in sweeps:
        t = Table("placement", "req/s", "rows/s", "p95 ms", "avg batch", title=f"Triton placement sweep: {s.workload}, concurrency {concurrency}")
        for p in s.points:
            mark = " (chosen)" if p.placement == s.chosen else ""
            mark += " (spec)" if p.placement == s.spec else ""
            t.add_row(f"{p.placement}{mark}", f"{p.point.throughput:,.1f}", f"{p.point.items_per_s:,.1f}", f"{p.point.p95_ms:,.1f}",
                      f"{p.point.avg_batch:.1f}")
        console.print(t)
        console.print(f"{s.workload}: chose {s.chosen}, {s.chosen_over_spec}x the spec's {s.spec}" if s.chosen != s.spec
                      else f"{s.workload}: the spec's placement ({s.spec}) is the fastest")
