"""Export one model: load -> ONNX -> parity gate -> a NEW numbered version (or nothing at all).

Export stops at writing the version. Registering it in MLflow, or exporting a registered version,
is MLOps' job (`djserve.mlops.publish`), which calls this; the exporter knows no registry.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx

from djserve.repository import ModelRepository, VersionMetadata
from djserve.repository.layout import METADATA_FILE, UNTRAINED
from djserve.specs import EXPORTED
from exporters import sources
from exporters.errors import ExportError
from exporters.onnx_contract import check_graph
from exporters.parity import DEFAULT_TOLERANCE, check_parity

Progress = Callable[[str], None]

EXTERNAL_DATA_ABOVE_BYTES = 2**31 - 2**26
"""Protobuf cannot serialise a message of 2 GiB or more, so a graph whose weights come near that
(xlm-roberta-large: 2.2 GB) keeps them in `WEIGHTS_FILE` beside model.onnx (ONNX external data).
The graph check, parity and both Triton backends read the pair from the version folder."""
WEIGHTS_FILE = "model.onnx.data"


@dataclass
class ExportResult:
    model: str
    version: int
    path: Path
    max_abs_diff: dict[str, float]
    parity: dict
    """the full parity report (tolerance, batches, max abs diff per output)"""
    checkpoint: Path | None = None
    """the source weights as a checkpoint file or folder (the seeded ones are saved to `save_seeded_to`)"""
    registry_uri: str | None = None


def export_model(
    name: str,
    repository: Path,
    checkpoint: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    progress: Progress = lambda step: None,
    extra: dict | None = None,
    weights: str | None = None,
    save_seeded_to: Path | None = None,
) -> ExportResult:
    """`extra` is recorded in the version's metadata.json (e.g. the registry version it came from).
    `weights`: what the weights are, when not the checkpoint path (a registered training run).
    `save_seeded_to`: without a checkpoint, save the seeded weights there as one (to register them)."""
    if name not in EXPORTED:
        raise ExportError(f"unknown model {name!r}; exportable: {', '.join(EXPORTED)}")
    spec = EXPORTED[name]
    checkpoint = checkpoint.expanduser().resolve() if checkpoint else None

    progress("loading weights" + (f" from {checkpoint}" if checkpoint else " (seeded reference)"))
    source = sources.load_source(name, checkpoint, seed)
    progress("exporting to ONNX")
    proto = source.export(source.parity_feeds[0][1])
    with tempfile.TemporaryDirectory(prefix=f"djserve-export-{name}-") as tmp:
        model_path = save_onnx(proto, Path(tmp))
        try:
            onnx.checker.check_model(str(model_path), full_check=True)  # by path: external data too
        except Exception as exc:
            raise ExportError(f"{name}: the exported ONNX graph is invalid: {exc}") from exc
        check_graph(proto, spec)
        progress(f"checking parity on {len(source.parity_feeds)} batches (tolerance {tolerance:.0e})")
        report = check_parity(spec, model_path, source.run, source.parity_feeds, tolerance)

        progress("writing the new version")
        repo = ModelRepository(repository)
        with repo.stage_version(spec) as staging:
            for part in Path(tmp).iterdir():  # model.onnx (and its weights file)
                shutil.move(part, staging / part.name)
            source.write_extras(staging)
            meta = VersionMetadata(
                model=name,
                version=0,  # set to the real number when the staged dir is committed
                source_framework=spec.framework,
                framework_version=source.framework_version,
                weights=weights or (str(checkpoint) if checkpoint else UNTRAINED),
                checkpoint_sha256=sources.checkpoint_sha256(checkpoint),
                parity=report.to_dict(),
                exported_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                exporter="djserve",
                onnx_opset=max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0),
                extra={**({"seed": seed} if checkpoint is None else {}), **(extra or {})},
            )
            (staging / METADATA_FILE).write_text(meta.to_json())
    version = repo.latest(name)
    assert version is not None
    if checkpoint is None and save_seeded_to is not None:
        checkpoint = source.save_checkpoint(Path(save_seeded_to))
    return ExportResult(name, version, repo.model_dir(name) / str(version), report.max_abs_diff, report.to_dict(), checkpoint)


def save_onnx(proto: onnx.ModelProto, directory: Path) -> Path:
    """`directory/model.onnx`, with the weights in WEIGHTS_FILE beside it when the graph would not fit
    one protobuf message."""
    path = directory / "model.onnx"
    weights = sum(len(t.raw_data) for t in proto.graph.initializer)
    if weights > EXTERNAL_DATA_ABOVE_BYTES:
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=WEIGHTS_FILE, size_threshold=1024)
    else:
        onnx.save_model(proto, path)
    return path
