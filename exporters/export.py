"""Export one model: load -> ONNX -> parity gate -> a NEW numbered version (or nothing at all)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx

from djserve.files import atomic_write_text
from djserve.repository import ModelRepository, VersionMetadata
from djserve.repository.layout import METADATA_FILE, UNTRAINED
from djserve.specs import EXPORTED
from exporters import sources
from exporters.errors import ExportError
from exporters.onnx_contract import check_graph
from exporters.parity import DEFAULT_TOLERANCE, check_parity

Progress = Callable[[str], None]


@dataclass
class ExportResult:
    model: str
    version: int
    path: Path
    max_abs_diff: dict[str, float]
    registry_uri: str | None = None


def export_model(
    name: str,
    repository: Path,
    checkpoint: Path | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
    progress: Progress = lambda step: None,
    extra: dict | None = None,
    register_in: Path | None = None,
    weights: str | None = None,
) -> ExportResult:
    """`extra` is recorded in the version's metadata.json (e.g. the registry version it came from).
    `register_in` (a state dir): also log the checkpoint to MLflow and register a model version.
    `weights`: what the weights are, when not the checkpoint path (a registered training run)."""
    if name not in EXPORTED:
        raise ExportError(f"unknown model {name!r}; exportable: {', '.join(EXPORTED)}")
    spec = EXPORTED[name]
    checkpoint = checkpoint.expanduser().resolve() if checkpoint else None

    progress("loading weights" + (f" from {checkpoint}" if checkpoint else " (seeded reference)"))
    source = sources.load_source(name, checkpoint, seed)
    progress("exporting to ONNX")
    proto = source.export(source.parity_feeds[0][1])
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(f"{name}: the exported ONNX graph is invalid: {exc}") from exc
    check_graph(proto, spec)
    progress(f"checking parity on {len(source.parity_feeds)} batches (tolerance {tolerance:.0e})")
    report = check_parity(spec, proto, source.run, source.parity_feeds, tolerance)

    progress("writing the new version")
    repo = ModelRepository(repository)
    with repo.stage_version(spec) as staging:
        onnx.save_model(proto, staging / "model.onnx")
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
    result = ExportResult(name, version, repo.model_dir(name) / str(version), report.max_abs_diff)
    if register_in is not None:
        progress("registering in MLflow")
        result.registry_uri = _register(register_in, source, spec, checkpoint, report, result)
    return result


def _register(state_dir: Path, source, spec, checkpoint: Path | None, report, result: "ExportResult") -> str:
    """Log the source checkpoint (the seeded weights saved as one, when no checkpoint was given),
    the spec and the parity figures as an MLflow run, register a version, tag the Triton version."""
    import json
    import tempfile
    from dataclasses import asdict

    from djserve.registry import CHAMPION, Registry

    registry = Registry(state_dir)
    with tempfile.TemporaryDirectory(prefix="djserve-ckpt-") as tmp:
        path = checkpoint or source.save_checkpoint(Path(tmp))
        rv = registry.register(
            spec.name,
            path,
            weights=str(checkpoint) if checkpoint else UNTRAINED,
            parity=report.to_dict(),
            spec=json.loads(json.dumps(asdict(spec), default=str)),
            extra_tags={"triton_version": str(result.version)},
        )
    uri = f"models:/{rv.name}/{rv.version}"
    meta_path = result.path / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["extra"]["registry"] = uri
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if registry.alias_version(spec.name, CHAMPION) is None and result.version == 1:
        registry.set_alias(spec.name, CHAMPION, rv.version)  # the first export serves 100%
    registry.record(spec.name, "register", version=rv.version, triton_version=result.version)
    return uri


def export_registered(
    uri: str,
    repository: Path,
    state_dir: Path,
    tolerance: float = DEFAULT_TOLERANCE,
    progress: Progress = lambda step: None,
) -> ExportResult:
    """A registered model version (a training run's, or an earlier export's) as a NEW Triton
    version whose metadata.json carries its provenance (run, dataset, held-out metrics), without
    registering it again. The family's first version becomes the champion."""
    import tempfile

    from djserve.registry import CHAMPION, Registry
    from exporters.isolated import export_isolated

    registry = Registry(state_dir)
    rv = registry.resolve(uri)
    provenance = registry.provenance(rv)
    progress(f"downloading {uri}")
    with tempfile.TemporaryDirectory(prefix="djserve-registered-") as tmp:
        checkpoint = registry.download_checkpoint(rv, Path(tmp))
        result = export_isolated(
            rv.family, repository, checkpoint, tolerance, progress=progress,
            extra={"registry": uri, "provenance": provenance}, weights=provenance.get("weights"),
        )
    result.registry_uri = uri
    registry.client.set_model_version_tag(rv.name, str(rv.version), "triton_version", str(result.version))
    if registry.alias_version(rv.family, CHAMPION) is None and result.version == 1:
        registry.set_alias(rv.family, CHAMPION, rv.version)  # the first version serves 100%
    return result
