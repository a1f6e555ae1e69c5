"""CreativeAnalysisModel in Keras with the design documents' recipe (S1:495-505): RMSprop, equal
loss weights over the four heads, EarlyStopping, ReduceLROnPlateau, ModelCheckpoint.

Its inputs are cheap (the mixing features and the set's track-list tokens), so it trains on
whole windows, as the gateway serves them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from djserve.specs import creative as spec_module
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.trainers import clips
from training.trainers.keras_fit import KerasConfig, configure_tensorflow, fit_keras, predict_windows

FAMILY = "creative"
FRAMEWORK = "keras"
HEADS = spec_module.SPEC.output("creative_scores").labels

PROFILES = {
    "reference": KerasConfig(clips=2400, windows=150, epochs=40, loss_weights=(0.25,) * 4, loss="mse", optimizer="rmsprop", patience=6),
    "quick": KerasConfig(clips=200, windows=40, epochs=4, loss_weights=(0.25,) * 4, loss="mse", optimizer="rmsprop"),
}


def _inputs(audio, mixing, tokens):
    return (mixing, tokens)


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.windows, progress, path)


def fit(data: Dataset, config: KerasConfig, seed: int, out_dir: Path, log: EpochLog, progress: Progress, shuffle_labels: bool = False) -> Path:
    configure_tensorflow(seed, config.threads)
    from exporters.architectures.creative import build_model

    train = data.splits["train"]
    if shuffle_labels:
        train = clips.shuffled(train, np.random.default_rng(seed))
    return fit_keras(build_model(seed), _inputs, train, data.splits["val"], "creative", HEADS, config, seed,
                     out_dir / f"{FAMILY}.keras", log, progress)


def evaluate(checkpoint: Path, data: Dataset, progress: Progress) -> Evaluation:
    configure_tensorflow(0, 2)
    from exporters.keras_onnx import load_keras

    model = load_keras(spec_module.SPEC, Path(checkpoint))
    held = data.splits["heldout"]
    pred = predict_windows(model, _inputs, held, "creative", HEADS)
    truth = held.labels("creative", HEADS)
    rows = clips.regression_rows(truth, pred, HEADS, data.splits["train"].labels("creative", HEADS).mean(0))
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()})
