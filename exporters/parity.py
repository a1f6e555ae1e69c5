"""The numerical gate before anything is written: ONNX Runtime must reproduce the source model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx
import onnxruntime as ort

from djserve.specs.base import ModelSpec
from exporters.errors import ParityError

DEFAULT_TOLERANCE = 1e-4
"""Max absolute difference allowed on every output element (outputs are scores in [0,1] or logits)."""

Feeds = dict[str, np.ndarray]


@dataclass
class BatchParity:
    batch: int
    axes: dict[str, int]
    max_abs_diff: dict[str, float]


@dataclass
class ParityReport:
    tolerance: float
    batches: list[BatchParity] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for b in self.batches:
            for name, d in b.max_abs_diff.items():
                out[name] = max(out.get(name, 0.0), d)
        return out

    def to_dict(self) -> dict:
        return {"tolerance": self.tolerance, "max_abs_diff": self.max_abs_diff, "batches": [asdict(b) for b in self.batches]}


def check_parity(
    spec: ModelSpec,
    model: onnx.ModelProto | Path,
    run_source: Callable[[Feeds], Mapping[str, np.ndarray]],
    feeds: list[tuple[Mapping[str, int], Feeds]],
    tolerance: float = DEFAULT_TOLERANCE,
) -> ParityReport:
    """Run both on every (axes, feeds) batch; raise ParityError naming the worst output."""
    # a path loads a graph whose weights are in a file beside it (external data, > 2 GiB)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    report = ParityReport(tolerance)
    for axes, batch_feeds in feeds:
        expected = run_source(batch_feeds)
        got = dict(zip(spec.output_names, session.run(spec.output_names, batch_feeds)))
        batch = next(iter(batch_feeds.values())).shape[0]
        diffs: dict[str, float] = {}
        for out in spec.outputs:
            want = np.asarray(expected[out.name])
            have = got[out.name]
            where = f"{spec.name}.{out.name} (batch {batch}{_fmt_axes(axes)})"
            if want.shape != have.shape:
                raise ParityError(f"parity failed: {where}: ONNX shape {have.shape} != source shape {want.shape}")
            diff = float(np.max(np.abs(want.astype(np.float64) - have.astype(np.float64)))) if want.size else 0.0
            if not np.isfinite(diff) or diff > tolerance:
                raise ParityError(
                    f"parity failed: {where}: max abs diff {diff:.3e} exceeds tolerance {tolerance:.0e}"
                )
            diffs[out.name] = diff
        report.batches.append(BatchParity(batch, dict(axes), diffs))
    return report


def _fmt_axes(axes: Mapping[str, int]) -> str:
    return "".join(f", {k}={v}" for k, v in axes.items())
