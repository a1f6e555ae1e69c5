"""Numbered versions in a Triton model repository.

A version is staged in a temporary directory beside the model and renamed into `<model>/<N>/`
in one step, so Triton (or a reader) never sees a half-written version and a failed export
leaves the repository as it was. Versions are never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from djserve.files import atomic_write_text
from djserve.repository.config import render_config
from djserve.specs.base import ModelSpec

METADATA_FILE = "metadata.json"
UNTRAINED = "untrained reference weights"
TRAINED = "trained reference"
"""Weights the project trained on its own generated data (`djserve train`)."""


@dataclass
class VersionMetadata:
    model: str
    version: int
    source_framework: str
    framework_version: str
    weights: str
    """UNTRAINED, TRAINED (a `djserve train` run, see extra.provenance), or the user's checkpoint path."""
    checkpoint_sha256: str | None
    parity: dict
    exported_at: str
    exporter: str
    onnx_opset: int
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def provenance(meta: dict) -> dict:
    """Where a version's weights come from, from its metadata.json: kind ("trained",
    "untrained", "checkpoint"), the registry version and training run, the dataset and the
    held-out metrics it was registered with."""
    weights = meta.get("weights", "")
    extra = meta.get("extra") or {}
    recorded = extra.get("provenance") or {}
    kind = "trained" if weights == TRAINED else "untrained" if weights == UNTRAINED else "checkpoint"
    out = {
        "kind": kind,
        "weights": weights,
        "registry": extra.get("registry") or recorded.get("registry"),
        "run_id": recorded.get("run_id"),
        "dataset": recorded.get("dataset.hash"),
        "profile": recorded.get("profile"),
        "trained_at": recorded.get("trained_at"),
        "headline": recorded.get("headline"),
        "metrics": recorded.get("metrics") or {},
        "exported_at": meta.get("exported_at"),
    }
    return {k: v for k, v in out.items() if v not in (None, {}, "")}


class ModelRepository:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def model_dir(self, model: str) -> Path:
        return self.root / model

    def versions(self, model: str) -> list[int]:
        d = self.model_dir(model)
        if not d.is_dir():
            return []
        return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())

    def latest(self, model: str) -> int | None:
        v = self.versions(model)
        return v[-1] if v else None

    def metadata(self, model: str, version: int) -> dict:
        return json.loads((self.model_dir(model) / str(version) / METADATA_FILE).read_text())

    def write_config(self, spec: ModelSpec) -> Path:
        path = self.model_dir(spec.name) / "config.pbtxt"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = render_config(spec)
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
        return path

    @contextmanager
    def stage_version(self, spec: ModelSpec) -> Iterator[Path]:
        """Yield an empty staging dir; on clean exit it becomes the next version, else vanishes."""
        model_dir = self.model_dir(spec.name)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
        try:
            yield staging
            self.write_config(spec)
            _commit(staging, model_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _commit(staging: Path, model_dir: Path) -> Path:
    """Rename staging to the next free number; os.rename onto an existing dir fails, never clobbers."""
    while True:
        existing = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        target = model_dir / str(max(existing, default=0) + 1)
        meta_path = staging / METADATA_FILE
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            meta["version"] = int(target.name)
            meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        try:
            os.rename(staging, target)
            return target
        except OSError:
            if not target.exists():
                raise
