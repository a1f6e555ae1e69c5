"""One loaded source model per framework behind a common shape the export driver uses.

Each loader imports its framework lazily, so exporting the PyTorch judge never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import onnx

from djserve.specs import EXPORTED
from djserve.specs.base import ModelSpec

Feeds = dict[str, np.ndarray]
PARITY_BATCHES = (2, 1, 4)
"""Batch sizes of the parity batches, paired with each spec's parity_axes."""


@dataclass
class Source:
    spec: ModelSpec
    framework_version: str
    run: Callable[[Feeds], Mapping[str, np.ndarray]]
    export: Callable[[Feeds], onnx.ModelProto]
    """Export with this example batch (batch >= 2 so the batch axis cannot be frozen to 1)."""
    parity_feeds: list[tuple[Mapping[str, int], Feeds]]
    save_checkpoint: Callable[[Path], Path] = None  # type: ignore[assignment]
    """Write the source weights as a checkpoint this exporter accepts (for the registry); returns its path."""
    write_extras: Callable[[Path], None] = lambda version_dir: None
    keepalive: list = field(default_factory=list)
    """Objects (temporary dirs) that must live until the export is finished."""


def parity_plan(spec: ModelSpec) -> list[tuple[int, Mapping[str, int]]]:
    """(batch size, axis sizes) of every parity batch: each batch size, cycling through the axes."""
    return list(zip(PARITY_BATCHES, itertools.cycle(spec.parity_axes)))


def default_feeds(spec: ModelSpec, rng: np.random.Generator) -> list[tuple[Mapping[str, int], Feeds]]:
    return [(axes, spec.random_inputs(b, axes, rng)) for b, axes in parity_plan(spec)]


def checkpoint_sha256(path: Path | None) -> str | None:
    """sha256 of a file, or of every file (path + bytes, sorted) of a directory."""
    if path is None:
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_source(name: str, checkpoint: Path | None, seed: int) -> Source:
    spec = EXPORTED[name]
    rng = np.random.default_rng(seed)
    if spec.framework == "pytorch":
        return _torch_source(spec, checkpoint, seed, rng)
    if spec.framework == "keras":
        return _keras_source(spec, checkpoint, seed, rng)
    return _hf_source(spec, checkpoint, seed, rng)


def _torch_source(spec: ModelSpec, checkpoint: Path | None, seed: int, rng) -> Source:
    import importlib

    from exporters import torch_onnx

    build = importlib.import_module(f"exporters.architectures.{spec.name}").build_model
    model = torch_onnx.load_torch(spec, build, checkpoint, seed)

    def save(directory: Path) -> Path:
        import torch

        torch.save(model.state_dict(), directory / f"{spec.name}.pt")
        return directory / f"{spec.name}.pt"

    return Source(
        spec,
        torch_onnx.framework_version(),
        run=lambda feeds: torch_onnx.run_torch(model, spec, feeds),
        export=lambda example: torch_onnx.to_onnx(model, spec, example),
        parity_feeds=default_feeds(spec, rng),
        save_checkpoint=save,
    )


def _keras_source(spec: ModelSpec, checkpoint: Path | None, seed: int, rng) -> Source:
    from exporters import keras_onnx

    model = keras_onnx.load_keras(spec, checkpoint, seed=seed)

    def save(directory: Path) -> Path:
        model.save(directory / f"{spec.name}.keras")
        return directory / f"{spec.name}.keras"

    return Source(
        spec,
        keras_onnx.framework_version(),
        run=lambda feeds: keras_onnx.run_keras(model, feeds),
        export=lambda example: keras_onnx.to_onnx(model, spec),
        parity_feeds=default_feeds(spec, rng),
        save_checkpoint=save,
    )


def _hf_source(spec: ModelSpec, checkpoint: Path | None, seed: int, rng) -> Source:
    from exporters import hf_onnx, torch_onnx

    keepalive = []
    if checkpoint is None:
        checkpoint, tmp = hf_onnx.reference_checkpoint(seed)
        keepalive.append(tmp)
    ckpt = hf_onnx.load_hf(spec, checkpoint)

    def save(directory: Path) -> Path:
        import shutil

        return Path(shutil.copytree(ckpt.directory, directory / spec.name))

    return Source(
        spec,
        hf_onnx.framework_version(),
        run=lambda feeds: torch_onnx.run_torch(ckpt.model, spec, feeds),
        export=lambda example: hf_onnx.to_onnx(ckpt, spec, example),
        parity_feeds=hf_onnx.sample_feeds(spec, ckpt, rng, parity_plan(spec)),
        save_checkpoint=save,
        write_extras=lambda version_dir: hf_onnx.save_tokenizer(ckpt, version_dir),
        keepalive=keepalive,
    )
