"""`djserve train` and `djserve evaluate`: dataset -> fit -> held-out evaluation -> MLflow -> registry.

Each call runs in a fresh process (`djserve.isolation`: TensorFlow and torch keep process-wide
state, and a finished run gives its memory back). The data of a profile is fixed (its generator
seed is part of the profile), so every version of a family is scored on the same held-out set;
`seed` varies initialisation, sampling and order only.
"""

from __future__ import annotations

import importlib
import inspect
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from djserve.isolation import run_isolated
from djserve.registry import CHAMPION, Registry, registered_name
from djserve.specs import EXPORTED
from training.base import Dataset, Evaluation, MetricRow, Progress, no_progress
from training.errors import TrainingError
from training.tracking import TRAINED, TrainingRun, evaluation_payload

FAMILIES = tuple(EXPORTED)
"""Every exported model family has a trainer (`training.trainers.<family>`)."""


def trainer(family: str) -> ModuleType:
    if family not in FAMILIES:
        raise TrainingError(f"unknown model {family!r}; trainable: {', '.join(FAMILIES)}")
    return importlib.import_module(f"training.trainers.{family}")


def _config(module: ModuleType, profile: str, epochs: int | None):
    if profile not in module.PROFILES:
        raise TrainingError(f"{module.FAMILY}: unknown profile {profile!r}; known: {', '.join(module.PROFILES)}")
    config = module.PROFILES[profile]
    if epochs is not None:
        field = "epochs" if hasattr(config, "epochs") else "max_epochs"
        config = replace(config, **{field: epochs})
    return config


def _dataset(module: ModuleType, profile: str, seed: int, progress: Progress, path: Path | None) -> Dataset:
    if path is None:
        return module.dataset(profile, seed, progress)
    if "path" not in inspect.signature(module.dataset).parameters:
        raise TrainingError(f"{module.FAMILY}: its data is generated in memory each run; --dataset does not apply")
    return module.dataset(profile, seed, progress, path=path)


@dataclass
class TrainResult:
    family: str
    registry_uri: str
    registry_version: int
    run_id: str
    headline: str
    metrics: dict[str, float]
    rows: list[MetricRow]
    fit_seconds: float
    total_seconds: float
    dataset_hash: str
    triton_version: int | None = None


def train(
    family: str,
    state_dir: Path,
    profile: str = "reference",
    seed: int = 0,
    epochs: int | None = None,
    shuffle_labels: bool = False,
    dataset: Path | None = None,
    progress: Progress = no_progress,
) -> TrainResult:
    """Train, evaluate on the held-out split, log the MLflow run, register a version."""
    started = time.monotonic()
    module = trainer(family)
    config = _config(module, profile, epochs)
    data = _dataset(module, profile, seed, progress, dataset)
    registry = Registry(state_dir)
    run = TrainingRun(registry, family, "train", {"profile": profile, "shuffled_labels": str(shuffle_labels).lower()})
    try:
        run.params(family=family, framework=getattr(module, "FRAMEWORK", ""), profile=profile, seed=seed,
                   shuffle_labels=shuffle_labels, config=config)
        run.dataset(data)
        with tempfile.TemporaryDirectory(prefix=f"djserve-train-{family}-") as tmp:
            fit_start = time.monotonic()
            checkpoint = module.fit(data, config, seed, Path(tmp), run.epoch, progress, shuffle_labels=shuffle_labels)
            fit_seconds = time.monotonic() - fit_start
            run.client.log_metric(run.run_id, "fit_seconds", fit_seconds)
            progress("evaluating on the held-out split")
            evaluation = module.evaluate(checkpoint, data, progress)
            run.evaluation(evaluation)
            progress("registering the checkpoint")
            rv = run.finish(checkpoint, evaluation, data, {
                "profile": profile,
                "seed": str(seed),
                "shuffled_labels": str(shuffle_labels).lower(),
                "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
    except BaseException:
        run.fail()
        raise
    registry.record(family, "train", version=rv.version, run_id=rv.run_id, profile=profile,
                    headline={evaluation.headline: evaluation.headline_value})
    return TrainResult(
        family=family,
        registry_uri=f"models:/{rv.name}/{rv.version}",
        registry_version=rv.version,
        run_id=rv.run_id,
        headline=evaluation.headline,
        metrics=evaluation.metrics,
        rows=evaluation.rows,
        fit_seconds=fit_seconds,
        total_seconds=time.monotonic() - started,
        dataset_hash=data.hash,
    )


def evaluate(
    family: str,
    state_dir: Path,
    profile: str = "reference",
    version: int | None = None,
    checkpoint: Path | None = None,
    dataset: Path | None = None,
    progress: Progress = no_progress,
    onnx_model: Path | None = None,
) -> dict[str, Any]:
    """Score a registered version (default: the champion) or a checkpoint file on the held-out
    split; logged as an MLflow run of kind `evaluate`. `onnx_model`: score that exported graph of the
    checkpoint instead (its tokenizer and the like still come from the checkpoint)."""
    module = trainer(family)
    if onnx_model is not None and not getattr(module, "EVALUATES_ONNX", False):
        able = [f for f in FAMILIES if getattr(trainer(f), "EVALUATES_ONNX", False)]
        raise TrainingError(f"{family}: held-out evaluation of an exported graph is not available yet "
                            f"(available for: {', '.join(able)})")
    registry = Registry(state_dir)
    with tempfile.TemporaryDirectory(prefix=f"djserve-eval-{family}-") as tmp:
        what: dict[str, str]
        if checkpoint is None:
            version = version or registry.alias_version(family, CHAMPION)
            if version is None:
                raise TrainingError(f"{family}: no version given and no champion in the registry")
            try:
                rv = registry.resolve(f"models:/{registered_name(family)}/{version}")
            except ValueError as exc:
                raise TrainingError(str(exc)) from None
            checkpoint = registry.download_checkpoint(rv, Path(tmp))
            what = {"evaluated": f"models:/{rv.name}/{rv.version}"}
        else:
            if not Path(checkpoint).exists():
                raise TrainingError(f"{family}: checkpoint {checkpoint} does not exist")
            what = {"evaluated": str(Path(checkpoint).resolve())}
        if onnx_model is not None:
            what["onnx_model"] = str(Path(onnx_model).resolve())
        data = _dataset(module, profile, 0, progress, dataset)
        run = TrainingRun(registry, family, "evaluate", {"profile": profile, **what})
        try:
            run.params(family=family, profile=profile, **what)
            run.dataset(data)
            evaluation = (module.evaluate(Path(checkpoint), data, progress) if onnx_model is None
                          else module.evaluate(Path(checkpoint), data, progress, onnx_model=Path(onnx_model)))
            run.evaluation(evaluation)
            run.end()
        except BaseException:
            run.fail()
            raise
    return {"family": family, "run_id": run.run_id, "dataset_hash": data.hash, **what, **evaluation_payload(evaluation)}


def train_isolated(family: str, state_dir: Path, progress: Progress = no_progress, **kwargs: Any) -> TrainResult:
    return run_isolated("training.run:train", dict(family=family, state_dir=state_dir, **kwargs), progress,
                        errors_module="training.errors", default_error="TrainingError", what=f"{family}: training")


def evaluate_isolated(family: str, state_dir: Path, progress: Progress = no_progress, **kwargs: Any) -> dict[str, Any]:
    return run_isolated("training.run:evaluate", dict(family=family, state_dir=state_dir, **kwargs), progress,
                        errors_module="training.errors", default_error="TrainingError", what=f"{family}: evaluation")


__all__ = ["TRAINED", "FAMILIES", "TrainResult", "Evaluation", "evaluate", "train", "train_isolated", "trainer"]
