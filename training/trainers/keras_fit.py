"""Keras training for the technical and creative models: the design documents' recipe (S1:485-571)
with per-head loss weights, EarlyStopping (best weights restored), ReduceLROnPlateau (factor 0.5)
and ModelCheckpoint, fed random spans of the clips through tf.data, validated on whole windows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from training.base import EpochLog, Progress
from training.trainers import clips


@dataclass(frozen=True)
class KerasConfig:
    clips: int
    windows: int
    epochs: int
    loss_weights: tuple[float, ...]
    loss: str = "bce"  # "bce" (S1:148-163: weighted binary cross-entropy on soft labels) or "mse"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 16
    crops: tuple[int, ...] | None = None
    """Span lengths in frames drawn per batch; None: whole windows."""
    steps_per_epoch: int | None = None
    """Batches per epoch (None: one pass over the training clips)."""
    patience: int = 4
    lr_patience: int = 2
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
    import keras
    from keras import ops

    w = np.asarray(weights, np.float32) / np.sum(weights)

    @keras.saving.register_keras_serializable(package="djserve")
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
    inputs: Callable[[np.ndarray, np.ndarray, np.ndarray], tuple],
    train: clips.Clips,
    val: clips.Clips,
    prefix: str,
    heads: Sequence[str],
    config: KerasConfig,
    seed: int,
    out_path: Path,
    log: EpochLog,
    progress: Progress,
) -> Path:
    """Train `model` and save the best weights as a .keras file at out_path.

    `inputs(audio, mixing, tokens)` picks the model's inputs from a clips.batch."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    # The model's own input shapes: batch and time axes stay dynamic, so spans of any length pass.
    in_sig = tuple(tf.TensorSpec(t.shape, t.dtype) for t in model.inputs)
    steps = config.steps_per_epoch or int(np.ceil(len(train) / config.batch_size))

    def batches():
        order = rng.permutation(len(train))
        for b in range(steps):
            start = (b * config.batch_size) % len(train)
            if start + config.batch_size > len(train):
                order = rng.permutation(len(train))
                start = 0
            rows = order[start : start + config.batch_size]
            length = clips.crop_lengths(rng, config.crops) if config.crops else None
            a, m, t, y = clips.batch(train, rows, length, rng, prefix, heads)
            yield inputs(a, m, t), y

    out_sig = tf.TensorSpec([None, len(heads)], tf.float32)
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=(in_sig, out_sig))
    val_rows = np.arange(len(val))
    val_batches = [clips.batch(val, val_rows[s : s + 16], None, rng, prefix, heads) for s in range(0, len(val), 16)]
    val_x = tuple(np.concatenate(parts) for parts in zip(*(inputs(*vb[:3]) for vb in val_batches)))
    val_y = np.concatenate([vb[3] for vb in val_batches])

    optimizer = (keras.optimizers.RMSprop if config.optimizer == "rmsprop" else keras.optimizers.Adam)(config.learning_rate)
    model.compile(optimizer=optimizer, loss=weighted_loss(config.loss_weights, config.loss), metrics=["mae"])

    class Report(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            progress(f"epoch {self.epoch}/{config.epochs} batch {batch + 1}/{steps} loss {logs.get('loss', 0):.4f}")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1

        def on_epoch_end(self, epoch, logs=None):
            pred = self.model.predict(val_x, batch_size=16, verbose=0)
            log(epoch + 1, {
                "train_loss": float(logs["loss"]),
                "val_loss": float(logs["val_loss"]),
                "val_mae": float(logs["val_mae"]),
                "val_r2": clips.metrics.regression(val_y.ravel(), pred.ravel())["r2"],
                "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            })

    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=steps,
        validation_data=(val_x, val_y),
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=config.lr_patience),
            keras.callbacks.ModelCheckpoint(str(out_path), save_best_only=True),
            Report(),
        ],
    )
    model.compile()  # drop the training loss from the saved file: the checkpoint is the model only
    model.save(out_path)
    return out_path


def predict_windows(model, inputs, data: clips.Clips, prefix: str, heads: Sequence[str]) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = []
    for s in range(0, len(data), 16):
        a, m, t, _ = clips.batch(data, np.arange(s, min(s + 16, len(data))), None, rng, prefix, heads)
        out.append(np.asarray(model.predict(inputs(a, m, t), verbose=0)))
    return np.concatenate(out)
