"""TechnicalPerformanceModel in Keras with the design documents' recipe: Adam, the
technical loss weights (bpm 0.3, alignment 0.3, transitions 0.25, pitch 0.15) on a weighted
binary cross-entropy, EarlyStopping, ReduceLROnPlateau, ModelCheckpoint.

As for the judge, the CPU budget shapes how: the conv stack (64/128/256 filters over the full
128-bin mel) keeps its seeded initialisation with BatchNorm statistics fitted to the training audio,
its [T/4, 256] sequences are computed once per clip, and the sequence layers (LSTM, attention,
LSTM, heads) and the mixing-feature branch are trained on them with the clips' exact labels; the
mixing features are standardised with the training clips' statistics, baked into the model.
Evaluation runs the whole model on held-out windows, as the gateway does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from djserve.specs import technical as spec_module
from djserve.specs.labels import TECHNICAL_WEIGHTS
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.onnx_graph import OnnxGraph
from training.trainers import clips
from training.trainers.keras_fit import KerasConfig, configure_tensorflow, fit_keras, predict_windows, save_model, spans

FAMILY = "technical"
FRAMEWORK = "keras"
HEADS = spec_module.SPEC.output("technical_scores").labels
_WEIGHTS = tuple(TECHNICAL_WEIGHTS[h] for h in HEADS)

PROFILES = {
    # The conv stack over the full mel costs ~0.1 s a clip even frozen, and Keras runs the LSTM step
    # by step on a CPU: 1,000 whole clips (128 steps each) in batches of 64 keep this in budget.
    "reference": KerasConfig(clips=2400, heldout=240, epochs=12, loss_weights=_WEIGHTS, max_train_clips=1000,
                             batch_size=64, learning_rate=2e-3, patience=4, lr_patience=2),
    "quick": KerasConfig(clips=200, heldout=60, epochs=6, loss_weights=_WEIGHTS, batch_size=64, learning_rate=2e-3,
                         bn_calibration_clips=16),
}


def _inputs(audio, mixing, tokens):
    return (audio, mixing)


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.heldout, progress, path, pairs=12 if profile == "reference" else 4)


def _calibrate_batchnorm(conv, audio: np.ndarray) -> None:
    """BatchNorm statistics of the training audio: one forward pass in training mode with momentum
    0 sets each layer's moving mean and variance to this batch's."""
    import keras

    norms = [layer for layer in conv.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    conv(audio, training=True)
    for layer in norms:
        layer.momentum = 0.99


def _sequences(conv, data: clips.Clips, progress: Progress, label: str) -> np.ndarray:
    out = []
    for s in range(0, len(data), 32):
        rows = data.index[s : s + 32]
        out.append(np.asarray(conv.predict(data.arrays["audio_features"][rows].astype(np.float32), verbose=0)).astype(np.float16))
        progress(f"convolving {label} {min(s + 32, len(data))}/{len(data)}")
    return np.concatenate(out)


def fit(data: Dataset, config: KerasConfig, seed: int, out_dir: Path, log: EpochLog, progress: Progress, shuffle_labels: bool = False) -> Path:
    configure_tensorflow(seed, config.threads)
    from exporters.architectures.technical import SEQUENCE_STRIDE, build_model, conv_part, head_part

    rng = np.random.default_rng(seed)
    train, val = data.splits["train"], data.splits["val"]
    if config.max_train_clips:
        train = clips.Clips(train.arrays, train.rows, train.index[: config.max_train_clips])
    if shuffle_labels:
        train = clips.shuffled(train, rng)
    model = build_model(seed, *clips.mixing_moments(train))
    conv = conv_part(model)
    calib = train.arrays["audio_features"][train.index[: config.bn_calibration_clips]].astype(np.float32)
    _calibrate_batchnorm(conv, calib)
    for layer in conv.layers:
        layer.trainable = False
    train_seq = _sequences(conv, train, progress, "training clips")
    val_seq = _sequences(conv, val, progress, "validation clips")

    b = spans(train, config.spans_per_clip, config.span, rng, "technical", HEADS)
    rows = np.tile(np.arange(len(train)), config.spans_per_clip if config.span else 1)
    span = b.audio.shape[-1] // SEQUENCE_STRIDE
    seq = np.stack([train_seq[r, s // SEQUENCE_STRIDE : s // SEQUENCE_STRIDE + span] for r, s in zip(rows, b.starts)]).astype(np.float32)
    head = head_part(model)
    val_mixing = val.arrays["mixing_features"][val.index].astype(np.float32)
    fit_keras(head, ((seq, b.mixing), b.labels), ((val_seq.astype(np.float32), val_mixing), val.labels("technical", HEADS)),
              config, seed, out_dir / f"{FAMILY}.keras", log, progress)
    return save_model(model, out_dir / f"{FAMILY}.keras")


EVALUATES_ONNX = True
"""`evaluate` can score an exported graph instead of the checkpoint's model (INT8 acceptance)."""


def evaluate(checkpoint: Path, data: Dataset, progress: Progress, onnx_model: Path | None = None) -> Evaluation:
    """Whole held-out windows through the whole network; `onnx_model`: that exported graph instead."""
    configure_tensorflow(0, 2)
    from exporters.keras_onnx import load_keras

    model = OnnxGraph(onnx_model, spec_module.SPEC, threads=2) if onnx_model else load_keras(spec_module.SPEC, Path(checkpoint))
    held = data.splits["heldout"]
    progress(f"scoring {len(held)} held-out windows")
    pred = predict_windows(model, _inputs, held, "technical", HEADS)
    truth = held.labels("technical", HEADS)
    rows = clips.regression_rows(truth, pred, HEADS, data.splits["train"].labels("technical", HEADS).mean(0))
    rows += clips.contrast_rows(
        lambda audio, mixing: np.asarray(model.predict((audio, mixing), batch_size=16, verbose=0)),
        data.splits["contrasts"], "technical", HEADS,
    )
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()},
                      samples=clips.headline_samples(truth, pred, None))
