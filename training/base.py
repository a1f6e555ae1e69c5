"""The shape every trainer module has, so `training.run` drives them all the same way.

A trainer module (`training.trainers.<family>`) exposes:

    FAMILY: str                 # the model family = the exported spec name ("judge", ...)
    PROFILES: dict[str, Config] # at least "reference" (what `make serve` serves) and "quick" (tests)
    def dataset(profile: str, seed: int, progress: Progress) -> Dataset
    def fit(data: Dataset, config, seed: int, out_dir: Path, log: EpochLog,
            progress: Progress, shuffle_labels: bool = False) -> Path   # checkpoint path
    def evaluate(checkpoint: Path, data: Dataset, progress: Progress) -> Evaluation

The checkpoint is written in the format `djserve export --checkpoint` accepts for that model (a
torch state_dict, a .keras file, a Hugging Face directory), so a trained version exports and
promotes exactly like a user's checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

Progress = Callable[[str], None]
"""One line describing what is happening now (shown as a status line by the CLI)."""

EpochLog = Callable[[int, Mapping[str, float]], None]
"""Called once per epoch with that epoch's metrics (train_loss, val_loss, learning_rate, ...)."""


def no_progress(_: str) -> None:
    pass


@dataclass
class Dataset:
    """A generated dataset as a trainer uses it: the arrays or rows of its splits and a content hash."""

    name: str
    hash: str
    """sha256 of the generator's parameters and of the generated content."""
    splits: dict[str, Any]
    """split name ("train", "val", "heldout", ...) -> whatever the trainer's data is (arrays, rows)."""
    description: dict[str, Any] = field(default_factory=dict)
    """Sizes, seed, generator version: logged as MLflow params."""


@dataclass
class MetricRow:
    """One printed row: a metric for a subset ("overall", a head, a language) and its baselines."""

    subset: str
    metric: str
    model: float
    baselines: dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    rows: list[MetricRow]
    headline: str
    """The key of `metrics` that promotion gates and the README quote (e.g. "overall.r2")."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else worth keeping as an artifact (per-sample predictions, confusion matrix)."""
    samples: list[float] = field(default_factory=list)
    """Each held-out item's share of the headline, in the data's order: the headline is their mean
    (R^2: 1 - squared error / the head's variance, averaged over heads; accuracy: 1 or 0; NDCG per
    user; F-measure per clip). Two versions scored on the same data pair item by item, which is
    what the promotion gate's bootstrap interval resamples."""

    @property
    def metrics(self) -> dict[str, float]:
        """Flat `subset.metric` -> value, and `subset.metric.baseline_<name>` for baselines."""
        out: dict[str, float] = {}
        for r in self.rows:
            out[f"{r.subset}.{r.metric}"] = float(r.model)
            for name, value in r.baselines.items():
                out[f"{r.subset}.{r.metric}.baseline_{name}"] = float(value)
        return out

    @property
    def headline_value(self) -> float:
        return self.metrics[self.headline]
