"""Between the exporter and the registry: a version written to the repository gets its MLflow
record, and a registered version becomes a new repository version.

    register_export   an export of the user's checkpoint (or seeded weights) -> an MLflow run and a
                      registered model version; the Triton version's metadata names it
    export_registered a registered version (a training run's) -> a NEW Triton version whose
                      metadata carries its provenance (run, dataset, held-out metrics)

The family's first version becomes the registry's champion: it serves 100% from the start.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from djserve.files import atomic_write_text
from djserve.registry import CHAMPION, Registry
from djserve.repository.layout import METADATA_FILE, UNTRAINED
from djserve.specs import EXPORTED
from exporters.errors import ExportError
from exporters.export import ExportResult, Progress
from exporters.isolated import export_isolated


def export_and_register(name: str, repository: Path, state_dir: Path, checkpoint: Path | None = None,
                        progress: Progress = lambda step: None, **export_kwargs) -> ExportResult:
    """`djserve export`: a new version from a checkpoint (or the seeded weights), then registered."""
    with tempfile.TemporaryDirectory(prefix="djserve-seeded-") as tmp:
        result = export_isolated(name, repository, checkpoint, progress=progress, save_seeded_to=Path(tmp), **export_kwargs)
        progress("registering in MLflow")
        result.registry_uri = register_export(state_dir, result, weights=str(checkpoint) if checkpoint else UNTRAINED)
    return result


def register_export(state_dir: Path, result: ExportResult, weights: str) -> str:
    """Log the export's source checkpoint, spec and parity figures as an MLflow run, register a
    version and name it in the Triton version's metadata. Returns its `models:/` URI."""
    if result.checkpoint is None:
        raise ValueError(f"{result.model} v{result.version}: the export kept no checkpoint to register")
    spec = EXPORTED[result.model]
    registry = Registry(state_dir)
    rv = registry.register(
        spec.name,
        result.checkpoint,
        weights=weights,
        parity=result.parity,
        spec=json.loads(json.dumps(asdict(spec), default=str)),
        extra_tags={"triton_version": str(result.version)},
    )
    uri = f"models:/{rv.name}/{rv.version}"
    meta_path = result.path / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["extra"]["registry"] = uri
    atomic_write_text(meta_path, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _first_is_champion(registry, spec.name, rv.version, result.version)
    registry.record(spec.name, "register", version=rv.version, triton_version=result.version)
    return uri


def export_registered(
    uri: str, repository: Path, state_dir: Path, tolerance: float = 1e-4, progress: Progress = lambda step: None,
    quantize: str | None = None, evaluate_graph=None,
) -> ExportResult:
    """A registered model version as a NEW Triton version carrying its provenance, without
    registering it again. `quantize="int8"`: an INT8 version, accepted on the held-out metric
    (djserve.mlops.quantize, scored by `evaluate_graph`) instead of parity."""
    registry = Registry(state_dir)
    rv = registry.resolve(uri)
    provenance = registry.provenance(rv)
    progress(f"downloading {uri}")
    with tempfile.TemporaryDirectory(prefix="djserve-registered-") as tmp:
        checkpoint = registry.download_checkpoint(rv, Path(tmp))
        recorded = dict(extra={"registry": uri, "provenance": provenance}, weights=provenance.get("weights"))
        if quantize == "int8":
            from djserve.mlops.quantize import export_int8

            if evaluate_graph is None:
                raise ExportError(f"{rv.family}: an INT8 export needs a held-out evaluator of exported graphs")
            result, _ = export_int8(rv.family, repository, evaluate_graph, checkpoint, profile=provenance.get("profile") or "reference",
                                    tolerance=tolerance, progress=progress, **recorded)
        elif quantize is None:
            result = export_isolated(rv.family, repository, checkpoint, tolerance, progress=progress, **recorded)
        else:
            raise ExportError(f"unknown quantization {quantize!r}; known: int8")
    result.registry_uri, result.checkpoint = uri, None  # the download is gone; the registry has it
    registry.client.set_model_version_tag(rv.name, str(rv.version), "triton_version", str(result.version))
    _first_is_champion(registry, rv.family, rv.version, result.version)
    return result


def _first_is_champion(registry: Registry, family: str, registry_version: int, triton_version: int) -> None:
    if registry.alias_version(family, CHAMPION) is None and triton_version == 1:
        registry.set_alias(family, CHAMPION, registry_version)
