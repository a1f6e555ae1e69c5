"""Held-out metrics and the trivial baselines they are reported beside.

Regression heads (judge, technical, creative): R^2, MAE and Pearson's r per head and overall,
beside a constant predictor (the training mean). Classification (sentiment): accuracy and
macro-F1 beside the majority class. Ranking (recommender): NDCG@k and HR@k beside popularity and
random. Beats: `training.trainers.beat_tracker` uses mir_eval directly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R^2, MAE and Pearson's r of one head (1-D arrays)."""
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    r = float(stats.pearsonr(y_true, y_pred)[0]) if np.std(y_pred) > 0 and np.std(y_true) > 0 else 0.0
    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "pearson": r,
    }


def mean_r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The mean over heads (columns) of each head's R^2: the validation figure logged per epoch."""
    return float(skm.r2_score(y_true, y_pred, multioutput="uniform_average"))


def r2_contributions(y_true: np.ndarray, y_pred: np.ndarray) -> list[float]:
    """Per row, mean over heads of 1 - squared error / the head's variance: their mean is `mean_r2`
    (a 1-D input is one head: their mean is its R^2)."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    var = y_true.var(axis=0)
    var = np.where(var > 0, var, 1.0)  # a constant head: sklearn's r2 is then 1 or 0 anyway
    return (1.0 - (y_true - y_pred) ** 2 / var).mean(axis=1).tolist()


def classification(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over `labels` (a label absent from both sides scores 0 in F1's mean)."""
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0)),
    }


def majority(train_labels: Sequence[str], n: int) -> list[str]:
    """The majority-class baseline's predictions for n samples."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return [str(values[int(np.argmax(counts))])] * n


def ndcg_at_k(ranked: Sequence[object], relevant: set, k: int = 10) -> float:
    """Binary-relevance NDCG@k of one ranked list."""
    gains = [1.0 / np.log2(i + 2) for i, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(k, len(relevant))))
    return float(sum(gains) / ideal) if ideal > 0 else 0.0


def hit_rate_at_k(ranked: Sequence[object], relevant: set, k: int = 10) -> float:
    """1 if any relevant item is in the top k, else 0."""
    return float(any(item in relevant for item in ranked[:k]))
