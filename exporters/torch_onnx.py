"""The PyTorch side of the exporter: load a state_dict, run eagerly, export with torch.onnx."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch

from djserve.specs.base import ModelSpec
from exporters.errors import CheckpointError, ExportError, one_line

OPSET = 18

# torch configures its loggers on import (after djserve.quiet ran): the exporter's notes about
# absent torchvision ops are noise for a CPU export, keep only errors.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def framework_version() -> str:
    return f"torch {torch.__version__}"


def load_torch(spec: ModelSpec, build: Callable[[int], torch.nn.Module], checkpoint: Path | None, seed: int) -> torch.nn.Module:
    model = build(seed)
    if checkpoint is None:
        return model.eval()
    if not checkpoint.is_file():
        raise CheckpointError(f"{spec.name}: checkpoint {checkpoint} does not exist or is not a file")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(f"{spec.name}: {checkpoint} is not a PyTorch state_dict ({type(exc).__name__}: {one_line(exc)})") from None
    if isinstance(state, dict):
        state = state.get("model_state_dict", state.get("state_dict", state))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{spec.name}: {checkpoint} holds no state_dict of tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{spec.name}: {checkpoint} is not a {type(model).__name__} checkpoint "
            f"({len(missing)} missing keys, e.g. {missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{spec.name}: {checkpoint}: {key} has shape {tuple(value.shape)}, the architecture needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state, strict=True)
    return model.eval()


def run_torch(model: torch.nn.Module, spec: ModelSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        out = model(*(torch.from_numpy(feeds[name]) for name in spec.input_names))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return {name: o.numpy() for name, o in zip(spec.output_names, outs)}


def to_onnx(model: torch.nn.Module, spec: ModelSpec, example: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Dynamo export with every named axis (and the batch) dynamic; weights inside the file."""
    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str) -> torch.export.Dim:
        return dims.setdefault(name, torch.export.Dim(name, min=1))

    dynamic_shapes = {t.name: {axis: dim(n) for axis, n in t.dynamic_axes.items()} for t in spec.inputs}
    args = tuple(torch.from_numpy(example[name]) for name in spec.input_names)
    try:
        program = torch.onnx.export(
            model,
            args,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    except Exception as exc:
        raise ExportError(f"{spec.name}: torch.onnx.export failed: {one_line(exc)}") from exc
    return program.model_proto
