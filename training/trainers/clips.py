"""What the judge, technical and creative trainers share: the DJ-set clip dataset, its splits,
random crops with exact labels, and held-out regression tables.

Spans: a window's label is the mean of the label model's per-frame curves, so any span of a clip
has an exact label too, and a 12 s clip is scored like the same 12 s inside a gateway window.
Held-out R^2 is measured on clips of a separate draw; the contrast pairs are whole gateway windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from djserve.settings import settings
from djserve.specs.features import MIXING_HOP_FRAMES
from djserve.specs.genres import weights_for
from training import metrics
from training.base import Dataset, MetricRow, Progress
from training.datasets import contrasts, djsets, store

@dataclass
class Clips:
    """A split of the clip dataset: the shared arrays and this split's row indices."""

    arrays: dict[str, np.ndarray]
    rows: list[dict]
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def labels(self, prefix: str, names: Sequence[str]) -> np.ndarray:
        """[N, len(names)] full-window labels of one output, in the spec's label order."""
        cols = [djsets.LABEL_KEYS.index(f"{prefix}.{n}") for n in names]
        return self.arrays["labels"][self.index][:, cols].astype(np.float32)

    def genres(self) -> list[str]:
        """The set's genre (A's), which the battle_judge ensemble weights the components by."""
        return [self.rows[i]["params"]["genre_a"] for i in self.index]


def shuffled(split: Clips, rng: np.random.Generator) -> Clips:
    """The control run's data: each training clip carries another training clip's labels."""
    arrays = dict(split.arrays)
    perm = np.arange(len(arrays["labels"]))
    perm[split.index] = rng.permutation(split.index)
    arrays["labels"] = arrays["labels"][perm]
    arrays["curves"] = arrays["curves"][perm]
    return Clips(arrays, split.rows, split.index)


DATA_SEED = 0
"""The data is part of the profile, not of a run: every version is scored on the same held-out set."""


def dataset(clips: int, heldout: int, progress: Progress, path: Path | None = None, pairs: int = 12) -> Dataset:
    """Training clips (split into train and val), held-out clips (a separate draw) and contrast
    pairs (whole gateway windows, scored as the gateway scores them); built once and cached under
    the state dir. `path`: a stored clip dataset to train on instead."""
    root = settings().state_dir / "datasets"
    if path is not None:
        stored = store.load(path, "djsets")
    else:
        stored = djsets.load_or_build(root, clips, DATA_SEED, djsets.TRAIN_FRAMES, progress)
    held = djsets.load_or_build(root, heldout, DATA_SEED + 1, djsets.TRAIN_FRAMES, progress)
    pair_set = contrasts.load_or_build(root, pairs, DATA_SEED + 2, progress)
    n = len(stored.rows)
    order = np.random.default_rng([DATA_SEED, 1]).permutation(n)
    n_val = max(1, int(round(0.1 * n)))
    splits = {
        "train": Clips(stored.arrays, stored.rows, np.sort(order[n_val:])),
        "val": Clips(stored.arrays, stored.rows, np.sort(order[:n_val])),
        "heldout": Clips(held.arrays, held.rows, np.arange(len(held.rows))),
        "contrasts": pair_set,
    }
    return Dataset(
        name="djsets",
        hash=store.params_hash({"train": stored.content_hash, "heldout": held.content_hash, "contrasts": pair_set.content_hash}),
        splits=splits,
        description={
            "train_path": str(stored.path), "heldout_path": str(held.path),
            "train_clips": len(splits["train"]), "val_clips": len(splits["val"]), "heldout_clips": len(splits["heldout"]),
            "train_frames": int(stored.arrays["audio_features"].shape[-1]),
            "heldout_frames": int(held.arrays["audio_features"].shape[-1]),
            "contrast_pairs": len(pair_set.rows),
        },
    )


def mixing_moments(split: Clips) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of a split's mixing features: the standardisation every clip
    model bakes in (the judge's buffers, the Keras models' `mixing_norm`)."""
    flat = split.arrays["mixing_features"][split.index].reshape(-1, split.arrays["mixing_features"].shape[-1])
    return flat.mean(axis=0), flat.var(axis=0)


class Batch(NamedTuple):
    audio: np.ndarray  # [B,1,128,L] float32
    mixing: np.ndarray  # [B,L/8,32]
    tokens: np.ndarray  # [B,K] int64
    labels: np.ndarray  # [B,H]
    starts: np.ndarray  # [B] first frame of each span


def batch(
    clips: Clips, rows: np.ndarray, length: int | None, rng: np.random.Generator, prefix: str, names: Sequence[str]
) -> Batch:
    """One span per clip: a random span of `length` frames (a multiple of the mixing hop, labels
    the means of the label curves over it), or whole clips (None)."""
    idx = clips.index[rows]
    audio = clips.arrays["audio_features"]
    frames = audio.shape[-1]
    cols = [djsets.LABEL_KEYS.index(f"{prefix}.{n}") for n in names]
    if length is None or length >= frames:
        starts = np.zeros(len(idx), np.int64)
        a = audio[idx].astype(np.float32)
        m = clips.arrays["mixing_features"][idx]
        y = clips.arrays["labels"][idx][:, cols]
    else:
        starts = rng.integers(0, (frames - length) // MIXING_HOP_FRAMES + 1, size=len(idx)) * MIXING_HOP_FRAMES
        a = np.stack([audio[i, :, :, s : s + length] for i, s in zip(idx, starts)]).astype(np.float32)
        steps = length // MIXING_HOP_FRAMES
        m = np.stack([clips.arrays["mixing_features"][i, s // MIXING_HOP_FRAMES : s // MIXING_HOP_FRAMES + steps] for i, s in zip(idx, starts)])
        curves = clips.arrays["curves"]
        y = np.stack([curves[i, cols, s : s + length].astype(np.float32).mean(axis=1) for i, s in zip(idx, starts)])
    width = int(clips.arrays["token_lengths"][idx].max())
    tokens = clips.arrays["tokens"][idx, :width]
    return Batch(a, m.astype(np.float32), tokens, y.astype(np.float32), starts)


def regression_rows(
    truth: np.ndarray, pred: np.ndarray, names: Sequence[str], train_mean: np.ndarray, genres: Sequence[str] | None = None
) -> list[MetricRow]:
    """R^2 / MAE / Pearson per head and overall, beside the constant (training-mean) predictor.

    Overall: the genre-weighted score when `genres` is given (the judge's overall_score),
    else the mean of the heads."""
    rows: list[MetricRow] = []

    def add(subset: str, y: np.ndarray, p: np.ndarray, const: float) -> None:
        model = metrics.regression(y, p)
        base = metrics.regression(y, np.full_like(y, const))
        for metric in ("r2", "mae", "pearson"):
            rows.append(MetricRow(subset, metric, model[metric], {"constant": base[metric]}))

    overall_truth, overall_pred = overall(truth, genres), overall(pred, genres)
    add("overall", overall_truth, overall_pred, float(overall(np.broadcast_to(train_mean, truth.shape), genres).mean()))
    for j, name in enumerate(names):
        add(name, truth[:, j], pred[:, j], float(train_mean[j]))
    return rows


def overall(heads: np.ndarray, genres: Sequence[str] | None = None) -> np.ndarray:
    """The overall score per window: genre-weighted heads (the judge's overall_score), else their mean."""
    if genres is None:
        return heads.mean(1)
    return (heads * np.array([weights_for(g) for g in genres])).sum(1)


def headline_samples(truth: np.ndarray, pred: np.ndarray, genres: Sequence[str] | None = None) -> list[float]:
    """Each window's share of the headline overall R^2 (their mean is it)."""
    return metrics.r2_contributions(overall(truth, genres), overall(pred, genres))


def contrast_rows(predict, pairs: store.StoredDataset, prefix: str, heads: Sequence[str]) -> list[MetricRow]:
    """Per factor that moves one of these heads: the share of pairs whose good mix scores higher.

    `predict(audio [B,1,128,T], mixing [B,S,32]) -> [B,H]` runs the whole model on whole windows."""
    a = pairs.arrays
    good = predict(a["good_audio_features"].astype(np.float32), a["good_mixing_features"])
    bad = predict(a["bad_audio_features"].astype(np.float32), a["bad_mixing_features"])
    factors = np.array([r["factor"] for r in pairs.rows])
    rows = []
    for factor, moved in contrasts.FACTORS.items():
        for key in moved:
            output, head = key.split(".")
            if output != prefix or head not in heads:
                continue
            j = list(heads).index(head)
            sel = factors == factor
            truth = np.array([r["good"][key] > r["bad"][key] for r in pairs.rows])[sel]
            ranked = float(np.mean((good[sel, j] > bad[sel, j]) == truth))
            rows.append(MetricRow(f"pairs.{factor}", f"{head}.ranked", ranked, {"chance": 0.5}))
    return rows
