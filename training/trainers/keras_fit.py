"""Keras training for the technical and creative models: the design documents' recipe
with per-head loss weights, EarlyStopping (best weights restored), ReduceLROnPlateau (factor 0.5)
and ModelCheckpoint, on arrays of training spans with exact labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from training import metrics
from training.base import EpochLog, Progress
from training.trainers import clips

@dataclass(frozen=True)
class KerasConfig:
    clips: int
    heldout: int
    epochs: int
    loss_weights: tuple[float, ...]
    loss: str = "bce"  # "bce" (the design documents' weighted binary cross-entropy on soft labels) or "mse"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 32
    span: int | None = None
    """Frames of the training spans (several per clip, drawn once); None: whole clips."""
    spans_per_clip: int = 2
    max_train_clips: int | None = None
    """Train on the first N training clips only (where a pass over all of them costs too much)."""
    patience: int = 6
    lr_patience: int = 3
    bn_calibration_clips: int = 32
    threads: int = 2


def configure_tensorflow(seed: int, threads: int) -> None:
    """Deterministic, bounded TensorFlow; must run before TensorFlow executes anything."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised in this process: keep its threads
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def weighted_loss(weights: Sequence[float], kind: str) -> Callable:
    from keras import ops

    w = np.asarray(weights, np.float32) / np.sum(weights)

    def loss(y_true, y_pred):
        if kind == "bce":
            p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
            per_head = -(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
        else:
            per_head = ops.square(y_true - y_pred)
        return ops.sum(per_head * w, axis=-1)

    return loss


def fit_keras(
    model,
    train: tuple[tuple[np.ndarray, ...], np.ndarray],
    val: tuple[tuple[np.ndarray, ...], np.ndarray],
    config: KerasConfig,
    seed: int,
    out_path: Path,
    log: EpochLog,
    progress: Progress,
) -> None:
    """Train `model` on arrays (spans drawn once, all of one length) with the recipe; the best
    epoch's weights are restored. Plain arrays rather than a generator: tf.data's from_generator
    stalled between epochs here, and Keras' callbacks need one fit() call."""
    import keras

    train_x, train_y = train
    val_x, val_y = val
    optimizer = (keras.optimizers.RMSprop if config.optimizer == "rmsprop" else keras.optimizers.Adam)(config.learning_rate)
    model.compile(optimizer=optimizer, loss=weighted_loss(config.loss_weights, config.loss), metrics=["mae"])

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pred = self.model.predict(val_x, batch_size=64, verbose=0)
            log(epoch + 1, {
                "train_loss": float(logs["loss"]),
                "val_loss": float(logs["val_loss"]),
                "val_mae": float(logs["val_mae"]),
                "val_r2": metrics.mean_r2(val_y, pred),
                "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            })
            progress(f"epoch {epoch + 1}/{config.epochs}: val loss {logs['val_loss']:.4f}")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.fit(
        train_x,
        train_y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(val_x, val_y),
        shuffle=True,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=config.lr_patience),
            keras.callbacks.ModelCheckpoint(str(out_path.with_suffix(".best.weights.h5")), save_best_only=True, save_weights_only=True),
            Report(),
        ],
    )


def spans(data: clips.Clips, per_clip: int, length: int | None, rng: np.random.Generator, prefix: str, heads: Sequence[str]) -> clips.Batch:
    """`per_clip` random spans of `length` frames of every clip (whole clips when None), drawn once."""
    rows = np.tile(np.arange(len(data)), per_clip if length else 1)
    return clips.batch(data, rows, length, rng, prefix, heads)


def save_model(model, path: Path) -> Path:
    """The model alone (no optimizer, no custom loss), so `load_keras` opens it in safe mode."""
    model.compile()
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def predict_windows(model, inputs, data: clips.Clips, prefix: str, heads: Sequence[str]) -> np.ndarray:
    """The full model on whole clips (held-out windows, as the gateway serves them)."""
    rng = np.random.default_rng(0)
    out = []
    for s in range(0, len(data), 16):
        b = clips.batch(data, np.arange(s, min(s + 16, len(data))), None, rng, prefix, heads)
        out.append(np.asarray(model.predict(inputs(b.audio, b.mixing, b.tokens), verbose=0)))
    return np.concatenate(out)
