"""Run each export in a fresh process (`djserve.isolation`): in torch 2.13 a second
`torch.onnx.export` of a model with an LSTM in one process freezes the LSTM's dynamic sequence
axis to the example's length, and a child per export returns TensorFlow's and torch's memory to
the system when it ends. Errors come back as the same ExportError subclass with the same message.
"""

from __future__ import annotations

from pathlib import Path

from djserve.isolation import run_isolated
from exporters.export import ExportResult, Progress


def export_isolated(
    name: str,
    repository: Path,
    checkpoint: Path | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
    progress: Progress = lambda step: None,
    extra: dict | None = None,
    weights: str | None = None,
    save_seeded_to: Path | None = None,
) -> ExportResult:
    return run_isolated(
        "exporters.export:export_model",
        dict(name=name, repository=repository, checkpoint=checkpoint, tolerance=tolerance, seed=seed, extra=extra,
             weights=weights, save_seeded_to=save_seeded_to),
        progress,
        errors_module="exporters.errors",
        default_error="ExportError",
        what=f"{name}: export",
    )
