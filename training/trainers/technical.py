"""TechnicalPerformanceModel in Keras with the design documents' recipe (S1:485-571): Adam, the
technical loss weights (bpm 0.3, alignment 0.3, transitions 0.25, pitch 0.15) on a weighted
binary cross-entropy (S1:148-163), EarlyStopping, ReduceLROnPlateau, ModelCheckpoint.

Trained on random spans of the clips (the conv stack at full mel resolution is the cost: a span
of 128-256 frames keeps the beats that alignment is judged on), evaluated on whole windows.
"""

from __future__ import annotations

from pathlib import Path

from djserve.specs import technical as spec_module
from djserve.specs.labels import TECHNICAL_WEIGHTS
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.trainers import clips
from training.trainers.keras_fit import KerasConfig, configure_tensorflow, fit_keras, predict_windows

FAMILY = "technical"
FRAMEWORK = "keras"
HEADS = spec_module.SPEC.output("technical_scores").labels
_WEIGHTS = tuple(TECHNICAL_WEIGHTS[h] for h in HEADS)

PROFILES = {
    "reference": KerasConfig(clips=2400, windows=150, epochs=12, loss_weights=_WEIGHTS, crops=(128, 192, 256), steps_per_epoch=40),
    "quick": KerasConfig(clips=200, windows=40, epochs=2, loss_weights=_WEIGHTS, crops=(96,), steps_per_epoch=8),
}


def _inputs(audio, mixing, tokens):
    return (audio,)


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.windows, progress, path)


def fit(data: Dataset, config: KerasConfig, seed: int, out_dir: Path, log: EpochLog, progress: Progress, shuffle_labels: bool = False) -> Path:
    configure_tensorflow(seed, config.threads)
    from exporters.architectures.technical import build_model

    train = data.splits["train"]
    if shuffle_labels:
        import numpy as np

        train = clips.shuffled(train, np.random.default_rng(seed))
    return fit_keras(build_model(seed), _inputs, train, data.splits["val"], "technical", HEADS, config, seed,
                     out_dir / f"{FAMILY}.keras", log, progress)


def evaluate(checkpoint: Path, data: Dataset, progress: Progress) -> Evaluation:
    configure_tensorflow(0, 2)
    from exporters.keras_onnx import load_keras

    model = load_keras(spec_module.SPEC, Path(checkpoint))
    held = data.splits["heldout"]
    progress(f"scoring {len(held)} held-out windows")
    pred = predict_windows(model, _inputs, held, "technical", HEADS)
    truth = held.labels("technical", HEADS)
    rows = clips.regression_rows(truth, pred, HEADS, data.splits["train"].labels("technical", HEADS).mean(0))
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()})
