"""Every training or evaluation run as an MLflow run, in the registry's store.

A training run logs its parameters (profile, seed, the trainer's config, the dataset's hash and
sizes), one metric point per epoch (train_loss, val_loss, learning_rate, ...), the held-out
metrics with their baselines, the evaluation table as an artifact and the checkpoint; it then
registers a model version whose tags carry the held-out metrics (`metric.<subset>.<metric>`), the
dataset hash and the run, so `djserve promote --from models:/NAME/VERSION` consumes it unchanged and
every Triton version exported from it can say where it came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from djserve.registry import METRIC_TAG, RegisteredVersion, Registry
from djserve.repository.layout import TRAINED
from training.base import Dataset, Evaluation


def _flat(prefix: str, value: Any) -> dict[str, str]:
    if is_dataclass(value):
        value = asdict(value)
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def evaluation_payload(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "headline": evaluation.headline,
        "rows": [asdict(r) for r in evaluation.rows],
        "metrics": evaluation.metrics,
        "extra": evaluation.extra,
        "samples": evaluation.samples,
    }


class TrainingRun:
    """One MLflow run; `finish` logs the outcome and registers the version, `fail` marks it FAILED."""

    def __init__(self, registry: Registry, family: str, kind: str, tags: dict[str, str] | None = None) -> None:
        self.registry, self.family = registry, family
        self.client = registry.client
        self.run_id = registry.start_run(family, {"kind": kind, **(tags or {})}, run_name=f"{kind}-{family}")

    def params(self, **values: Any) -> None:
        flat: dict[str, str] = {}
        for key, value in values.items():
            flat.update(_flat(key, value))
        for key, value in flat.items():
            self.client.log_param(self.run_id, key, value[:6000])

    def dataset(self, data: Dataset) -> None:
        self.client.set_tag(self.run_id, "dataset.hash", data.hash)
        self.params(dataset={"name": data.name, "hash": data.hash, **data.description})

    def epoch(self, epoch: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, float(value), step=int(epoch))

    def evaluation(self, evaluation: Evaluation) -> None:
        for key, value in evaluation.metrics.items():
            self.client.log_metric(self.run_id, f"heldout.{key}" if not key.startswith("heldout") else key, value)
        self.registry.log_json(self.run_id, "evaluation.json", evaluation_payload(evaluation))

    def finish(self, checkpoint: Path, evaluation: Evaluation, data: Dataset, tags: dict[str, str]) -> RegisteredVersion:
        self.registry.log_checkpoint(self.run_id, checkpoint)
        self.client.set_terminated(self.run_id)
        metric_tags = {f"{METRIC_TAG}{k}": f"{v:.6g}" for k, v in evaluation.metrics.items() if ".baseline_" not in k}
        return self.registry.create_version(
            self.family,
            self.run_id,
            {
                "weights": TRAINED,
                "dataset.hash": data.hash,
                "dataset.name": data.name,
                "headline": evaluation.headline,
                **tags,
                **metric_tags,
            },
        )

    def end(self) -> None:
        self.client.set_terminated(self.run_id)

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, status="FAILED")
