"""INT8 versions: ONNX Runtime dynamic quantization, accepted on the held-out metric.

A quantized graph cannot match its source within 1e-4 (that is the point of it), so parity is the
wrong gate. Instead the FP32 export is checked for parity as usual, its weights are quantized to
INT8 (`onnxruntime.quantization.quantize_dynamic`: int8 weights, activations quantized on the fly),
and both graphs are scored on the family's held-out data. The INT8 graph becomes a NEW version
only if it loses at most `max_loss` of the headline metric (1 point of accuracy, or 0.01 of R^2);
otherwise nothing is written and the figures say why. The version's metadata records the
quantization, both held-out figures and the bound; it is served, canaried and promoted like any
version.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from djserve.repository import ModelRepository
from djserve.repository.layout import METADATA_FILE
from djserve.specs import EXPORTED
from exporters.errors import ExportError
from exporters.export import WEIGHTS_FILE, ExportResult
from exporters.isolated import export_isolated

Progress = Callable[[str], None]
GraphEvaluator = Callable[[str, Path, Path, str], dict]
"""(family, checkpoint, ONNX graph, profile) -> the held-out evaluation payload (headline, metrics) of
that graph; training provides it (the CLI injects it: MLOps does not import training)."""

MAX_LOSS = 0.01
"""Headline metric an INT8 version may lose against its FP32 graph: 1 point of accuracy, 0.01 of R^2."""


@dataclass
class Quantization:
    method: str
    headline: str
    fp32: float
    int8: float
    max_loss: float
    fp32_bytes: int
    int8_bytes: int

    @property
    def loss(self) -> float:
        return self.fp32 - self.int8

    def to_dict(self) -> dict:
        return {"method": self.method, "headline": self.headline, "fp32": self.fp32, "int8": self.int8,
                "loss": round(self.loss, 6), "max_loss": self.max_loss, "fp32_bytes": self.fp32_bytes,
                "int8_bytes": self.int8_bytes}


def quantize_int8(fp32: Path, out: Path) -> Path:
    """Dynamic INT8 quantization of an ONNX graph (weights int8, activations quantized per call)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The exporter's intermediate shapes (value_info) can carry sizes of its example batch, which the
    # quantizer's own shape inference then contradicts: quantize the graph without them.
    graph = onnx.load(str(fp32))  # with its external weights file, if it has one
    del graph.graph.value_info[:]
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = out.with_name(out.stem + ".plain.onnx")
    weights = plain.with_name(plain.name + ".data")
    large = (fp32.parent / WEIGHTS_FILE).exists()
    onnx.save_model(graph, str(plain), save_as_external_data=large, location=weights.name)
    try:
        quantize_dynamic(str(plain), str(out), weight_type=QuantType.QInt8)  # int8 weights: a quarter the size
    finally:
        plain.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)
    return out


def export_int8(
    name: str,
    repository: Path,
    evaluate_graph: GraphEvaluator,
    checkpoint: Path | None = None,
    profile: str = "reference",
    seed: int = 0,
    tolerance: float = 1e-4,
    max_loss: float = MAX_LOSS,
    progress: Progress = lambda step: None,
    extra: dict | None = None,
    weights: str | None = None,
) -> tuple[ExportResult, Quantization]:
    """A NEW INT8 version of `name` from the checkpoint (or the seeded weights), or ExportError.
    `extra` and `weights` are recorded in its metadata as `export_model` records them."""
    if name not in EXPORTED:
        raise ExportError(f"unknown model {name!r}; exportable: {', '.join(EXPORTED)}")
    with tempfile.TemporaryDirectory(prefix=f"djserve-int8-{name}-") as tmp:
        scratch = Path(tmp) / "model_repository"
        ModelRepository(scratch).write_config(EXPORTED[name])
        seeded = Path(tmp) / "seeded"
        seeded.mkdir()
        fp32 = export_isolated(name, scratch, checkpoint, tolerance, seed, progress=progress,
                               save_seeded_to=seeded, extra=extra, weights=weights)
        source = checkpoint or fp32.checkpoint
        progress("quantizing to INT8")
        int8_file = quantize_int8(fp32.path / "model.onnx", Path(tmp) / "model.int8.onnx")
        scores = {}
        for label, graph in (("FP32", fp32.path / "model.onnx"), ("INT8", int8_file)):
            progress(f"scoring the {label} graph on the held-out data")
            scores[label] = evaluate_graph(name, source, graph, profile)
        headline = scores["FP32"]["headline"]
        q = Quantization(
            method="onnxruntime dynamic, int8 weights (QInt8)", headline=headline,
            fp32=float(scores["FP32"]["metrics"][headline]), int8=float(scores["INT8"]["metrics"][headline]),
            max_loss=max_loss, fp32_bytes=(fp32.path / "model.onnx").stat().st_size, int8_bytes=int8_file.stat().st_size,
        )
        if q.loss > max_loss:
            raise ExportError(f"{name}: INT8 refused: held-out {headline} {q.fp32:.4f} (FP32) -> {q.int8:.4f} (INT8) "
                              f"loses {q.loss:.4f} > {max_loss:g}; nothing was written")
        progress("writing the new INT8 version")
        result = write_int8_version(repository, name, fp32.path, int8_file, q.to_dict(), fp32.max_abs_diff, fp32.parity)
    return result, q


def write_int8_version(repository: Path, name: str, fp32_dir: Path, int8_file: Path, record: dict,
                       max_abs_diff: dict | None = None, parity: dict | None = None) -> ExportResult:
    """A NEW version of `name`: the FP32 version's files (tokenizer, metadata) with the INT8 graph,
    and how it was accepted (`record`) in its metadata under `quantization`."""
    repo = ModelRepository(repository)
    with repo.stage_version(EXPORTED[name]) as staging:
        # the tokenizer and the metadata; the FP32 weights stay behind
        shutil.copytree(fp32_dir, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns("model.onnx", WEIGHTS_FILE))
        shutil.copyfile(int8_file, staging / "model.onnx")
        meta_path = staging / METADATA_FILE
        meta = json.loads(meta_path.read_text())
        meta["extra"]["quantization"] = record
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    version = repo.latest(name)
    assert version is not None
    return ExportResult(name, version, repo.model_dir(name) / str(version), max_abs_diff or {}, parity or {})
