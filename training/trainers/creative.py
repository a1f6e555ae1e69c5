"""CreativeAnalysisModel in Keras with the design documents' recipe: RMSprop, equal
loss weights over the four heads, EarlyStopping, ReduceLROnPlateau, ModelCheckpoint.

Its inputs are cheap (the mixing features and the set's track-list tokens, as the gateway sends
them), so the whole network trains, on the training clips (exact labels), and is evaluated on
held-out windows. Feeding only the genre words instead (the generated titles are random words)
scored the same on held-out data, so training sees what serving sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from djserve.specs import creative as spec_module
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.onnx_graph import OnnxGraph
from training.trainers import clips
from training.trainers.keras_fit import KerasConfig, configure_tensorflow, fit_keras, predict_windows, save_model, spans

FAMILY = "creative"
FRAMEWORK = "keras"
HEADS = spec_module.SPEC.output("creative_scores").labels

PROFILES = {
    "reference": KerasConfig(clips=2400, heldout=240, epochs=30, loss_weights=(0.25,) * 4, loss="mse", optimizer="rmsprop",
                             patience=5),
    "quick": KerasConfig(clips=200, heldout=60, epochs=8, loss_weights=(0.25,) * 4, loss="mse", optimizer="rmsprop"),
}


def _inputs(audio, mixing, tokens):
    return (mixing, tokens)


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.heldout, progress, path, pairs=12 if profile == "reference" else 4)


def fit(data: Dataset, config: KerasConfig, seed: int, out_dir: Path, log: EpochLog, progress: Progress, shuffle_labels: bool = False) -> Path:
    configure_tensorflow(seed, config.threads)
    from exporters.architectures.creative import build_model

    rng = np.random.default_rng(seed)
    train, val = data.splits["train"], data.splits["val"]
    if shuffle_labels:
        train = clips.shuffled(train, rng)

    b = spans(train, config.spans_per_clip, config.span, rng, "creative", HEADS)
    vb = clips.batch(val, np.arange(len(val)), None, rng, "creative", HEADS)
    model = build_model(seed, *clips.mixing_moments(train))
    fit_keras(model, ((b.mixing, b.tokens), b.labels), ((vb.mixing, vb.tokens), vb.labels),
              config, seed, out_dir / f"{FAMILY}.keras", log, progress)
    pred = np.asarray(model.predict((vb.mixing, vb.tokens), batch_size=64, verbose=0))
    calibrated = build_model(seed, *clips.mixing_moments(train), calibration=shrinkage(pred, vb.labels, b.labels.mean(0)))
    calibrated.set_weights(model.get_weights())  # the calibration layer has no weights
    return save_model(calibrated, out_dir / f"{FAMILY}.keras")


def shrinkage(pred: np.ndarray, truth: np.ndarray, train_mean: np.ndarray) -> tuple[list[float], list[float]]:
    """Per head, the least-squares slope of the validation labels on the predictions, clipped to
    [0,1], pivoting on the training mean: out = mean + k (pred - mean) = k pred + (1 - k) mean.
    A head the data does not determine gets k near 0 and scores about as well as the constant."""
    scale, offset = [], []
    for j in range(pred.shape[1]):
        p, y = pred[:, j] - train_mean[j], truth[:, j] - train_mean[j]
        k = float(np.clip(np.dot(p, y) / max(float(np.dot(p, p)), 1e-9), 0.0, 1.0))
        scale.append(k)
        offset.append(float((1.0 - k) * train_mean[j]))
    return scale, offset


EVALUATES_ONNX = True
"""`evaluate` can score an exported graph instead of the checkpoint's model (INT8 acceptance)."""


def evaluate(checkpoint: Path, data: Dataset, progress: Progress, onnx_model: Path | None = None) -> Evaluation:
    """Whole held-out windows through the whole network; `onnx_model`: that exported graph instead."""
    configure_tensorflow(0, 2)
    from exporters.keras_onnx import load_keras

    model = OnnxGraph(onnx_model, spec_module.SPEC, threads=2) if onnx_model else load_keras(spec_module.SPEC, Path(checkpoint))
    held = data.splits["heldout"]
    pred = predict_windows(model, _inputs, held, "creative", HEADS)
    truth = held.labels("creative", HEADS)
    rows = clips.regression_rows(truth, pred, HEADS, data.splits["train"].labels("creative", HEADS).mean(0))
    rows += clips.contrast_rows(
        lambda audio, mixing: np.asarray(model.predict((mixing, np.zeros((len(mixing), 1), np.int64)), batch_size=16, verbose=0)),
        data.splits["contrasts"], "creative", HEADS,
    )
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()},
                      samples=clips.headline_samples(truth, pred, None))
