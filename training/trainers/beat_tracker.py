"""RealTimeBeatTracker in Keras with the design documents' recipe: Adam,
EarlyStopping (best weights restored), ReduceLROnPlateau (factor 0.5), ModelCheckpoint.

- Data: `training.datasets.beats` clips. Training feeds random spans of the 8-s clips (3-8 s, half
  of them from the clip's first frame, so a chunk's start is seen as the gateway analyses it), each
  span's mel re-referenced to its own maximum as the gateway's per-chunk analysis does.
- Loss: beats are about one frame in twenty, so the per-frame branch has a weighted binary
  cross-entropy on widened targets (1 on the beat's frame, 0.5 either side; beat frames weigh
  `beat_weight` times a background frame); the chunk branch a plain binary cross-entropy on
  "this span holds a beat". Adam with clipnorm 1 (the LSTM's gradients otherwise blow up now
  and then).
- Batches of 128 spans: on a CPU an LSTM costs its loop over frames far more than its batch width.
- Validation (full 8-s clips) once per epoch computes the loss the callbacks watch and the beat
  F-measure after decoding (`djserve.beats`), both logged.
- Evaluation: held-out clips of 2-10 s analysed whole, decoded by `djserve.beats.decode`, scored
  with mir_eval (F-measure, CMLt, AMLt: untrimmed, as the chunks are short) and tempo Acc1 (within
  4 %) / Acc2 (also x2, x1/2, x3, x1/3), beside librosa's beat tracker on the same audio and
  evenly spaced guesses at 120 BPM, per kind of clip, chunk length, intensity and genre; no-beat
  detection from beat_probability beside librosa (it finds two beats or more) and always
  answering "beat".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from djserve import beats as decoder
from djserve.settings import settings
from djserve.specs import beat_tracker as spec_module
from training.base import Dataset, EpochLog, Evaluation, MetricRow, Progress, no_progress
from training.datasets import beats as beat_data
from training.datasets import store
from training.onnx_graph import OnnxGraph
from training.trainers.keras_fit import configure_tensorflow

FAMILY = "beat_tracker"
FRAMEWORK = "keras"
SPEC = spec_module.SPEC
TEMPO_TOLERANCE = 0.04
F_MEASURE_WINDOW_S = 0.07


@dataclass(frozen=True)
class BeatConfig:
    sizes: beat_data.Sizes
    epochs: int
    steps_per_epoch: int
    batch_size: int = 128
    """On two cores 128 spans of 256 frames take 1.8x the time of 32."""
    crops: tuple[int, ...] = (128, 192, 256, 344)
    """Span lengths in frames (3-8 s) drawn per batch."""
    learning_rate: float = 5e-3
    beat_weight: float = 5.0
    chunk_weight: float = 0.5
    """Weight of the chunk branch's loss beside the per-frame loss."""
    patience: int = 4
    lr_patience: int = 2
    threads: int = 2
    data_seed: int = 0
    """The clips' generator seed: part of the profile, so every version is scored on the same
    held-out clips (the run's seed varies initialisation and sampling only)."""


PROFILES = {
    "reference": BeatConfig(beat_data.Sizes(train=1000, val=120, heldout=180), epochs=18, steps_per_epoch=40),
    "quick": BeatConfig(beat_data.Sizes(train=200, val=32, heldout=48), epochs=8, steps_per_epoch=15, batch_size=64,
                        crops=(96, 128)),
}


def dataset(profile: str, seed: int, progress: Progress = no_progress, path: Path | None = None) -> Dataset:
    """The profile's clips (built once and cached under the state dir, or a given folder); `seed`
    does not change them (see BeatConfig.data_seed)."""
    config = PROFILES[profile]
    if path is not None:
        stored = store.load(path, "beats")
    else:
        stored = beat_data.load_or_build(settings().state_dir / "datasets", config.sizes, config.data_seed, progress)
    splits = beat_data.splits(stored)
    return Dataset(
        name="beats",
        hash=stored.content_hash,
        splits=splits,
        description={"dataset_path": str(stored.path), "generator_version": beat_data.GENERATOR_VERSION,
                     "data_seed": stored.manifest["params"]["seed"],
                     **{f"{k}_clips": len(v) for k, v in splits.items()}},
    )


# --- training -------------------------------------------------------------------------------------


def _rereference(mel: np.ndarray) -> np.ndarray:
    """A span's mel as if analysed alone: the scaling is dB relative to the chunk's maximum."""
    return np.clip(mel + (1.0 - mel.max()), 0.0, 1.0)


def _targets(split: beat_data.BeatSplit, beat_rows: np.ndarray) -> np.ndarray:
    """[N, T] per-frame targets of same-length clips, from the beat table rows given."""
    n_frames = split.n_frames(0)
    return np.stack([beat_data.frame_targets(b[~np.isnan(b)], n_frames) for b in beat_rows])


def frame_loss(beat_weight: float) -> Callable:
    """Binary cross-entropy per frame, beat frames (target > 0) weighted up to `beat_weight`."""
    from keras import ops

    def loss(y_true, y_pred):
        p = ops.clip(y_pred, 1e-6, 1 - 1e-6)
        bce = -(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p))
        return ops.mean(bce * (1.0 + (beat_weight - 1.0) * y_true), axis=-1)

    return loss


def _bce(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def fit(data: Dataset, config: BeatConfig, seed: int, out_dir: Path, log: EpochLog, progress: Progress = no_progress,
        shuffle_labels: bool = False) -> Path:
    configure_tensorflow(seed, config.threads)
    import keras
    import tensorflow as tf

    from exporters.architectures.beat_tracker import build_model

    train, val = data.splits["train"], data.splits["val"]
    rng = np.random.default_rng(seed)
    n, n_frames = len(train), train.n_frames(0)
    mel = train.mel.reshape(n, n_frames, -1)  # training clips share one length
    beat_rows = train.beats
    if shuffle_labels:  # the control: every clip carries another clip's beats
        beat_rows = beat_rows[rng.permutation(n)]
    targets = _targets(train, beat_rows)

    def batches():
        while True:
            length = int(rng.choice([c for c in config.crops if c <= n_frames]))
            rows = rng.choice(n, config.batch_size, replace=False)
            anywhere = rng.integers(0, n_frames - length + 1, config.batch_size)
            starts = np.where(rng.random(config.batch_size) < 0.5, 0, anywhere)
            x = np.stack([_rereference(mel[r, s : s + length].astype(np.float32)) for r, s in zip(rows, starts)])
            y = np.stack([targets[r, s : s + length] for r, s in zip(rows, starts)])
            yield x, (y[..., None], (y.max(axis=1, keepdims=True) >= 1.0).astype(np.float32))

    sig = (tf.TensorSpec([None, None, 84], tf.float32),
           (tf.TensorSpec([None, None, 1], tf.float32), tf.TensorSpec([None, 1], tf.float32)))
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=sig)
    val_x = val.mel.reshape(len(val), val.n_frames(0), -1).astype(np.float32)
    val_t = _targets(val, val.beats)
    val_has = val.has_beat.astype(np.float32)

    model = build_model(seed)
    # clipnorm: without it the LSTM's gradients blow up now and then (a jump in loss after ~1000 steps).
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, clipnorm=1.0),
                  loss=[frame_loss(config.beat_weight), "binary_crossentropy"], loss_weights=[1.0, config.chunk_weight])
    graph = tf.function(lambda x: model(x, training=False))

    class Report(keras.callbacks.Callback):
        """Validation in one pass: the loss (written into the logs the callbacks after this one
        read, as Keras' own validation would) and the decoded beats' F-measure."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.started = epoch + 1, time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            progress(f"epoch {self.epoch}/{config.epochs} batch {batch + 1}/{config.steps_per_epoch} "
                     f"loss {logs.get('loss', 0):.4f}")

        def on_epoch_end(self, epoch, logs=None):
            act, prob = (np.asarray(o) for o in graph(val_x))
            act, prob = act[..., 0], prob[:, 0]
            frame = np.mean(_bce(val_t, act) * (1.0 + (config.beat_weight - 1.0) * val_t), axis=1)
            logs["val_loss"] = float(np.mean(frame + config.chunk_weight * _bce(val_has, prob)))
            f = [_f_measure(val.beat_times(i), decoder.decode(act[i]).times)
                 for i in range(len(val)) if val.has_beat[i]]
            log(epoch + 1, {
                "train_loss": float(logs["loss"]),
                "val_loss": logs["val_loss"],
                "val_f_measure": float(np.mean(f)) if f else 0.0,
                "val_nobeat_accuracy": float(np.mean((prob >= 0.5) == val.has_beat)),
                "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
                "epoch_seconds": time.perf_counter() - self.started,
            })

    out_path = out_dir / f"{FAMILY}.keras"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        shuffle=False,  # the generator draws its own random spans
        verbose=0,
        callbacks=[
            Report(),
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=config.lr_patience),
            keras.callbacks.ModelCheckpoint(str(out_path), save_best_only=True),
        ],
    )
    model.compile()  # drop the training loss from the saved file: the checkpoint is the model only
    model.save(out_path)
    return out_path


# --- evaluation -----------------------------------------------------------------------------------


def _f_measure(reference: np.ndarray, estimated: np.ndarray) -> float:
    import mir_eval

    if len(reference) == 0:
        return float(len(estimated) == 0)
    if len(estimated) == 0:  # mir_eval's answer too, without its warning
        return 0.0
    return float(mir_eval.beat.f_measure(reference, np.asarray(estimated, np.float64), F_MEASURE_WINDOW_S))


def beat_scores(reference: np.ndarray, estimated: np.ndarray, true_bpm: float, bpm: float | None) -> dict[str, float]:
    """mir_eval's F-measure, CMLt and AMLt on untrimmed beats (a chunk is 2-10 s: the usual
    first-5-s trim would leave nothing), and tempo Acc1 / Acc2."""
    import mir_eval

    estimated = np.sort(np.asarray(estimated, np.float64))
    _, cmlt, _, amlt = mir_eval.beat.continuity(reference, estimated) if len(estimated) else (0.0, 0.0, 0.0, 0.0)
    ratios = [] if not bpm else [abs(bpm / (true_bpm * k) - 1) for k in (1, 2, 0.5, 3, 1 / 3)]
    return {
        "f_measure": _f_measure(reference, estimated),
        "cmlt": float(cmlt),
        "amlt": float(amlt),
        "tempo_acc1": float(bool(ratios) and ratios[0] <= TEMPO_TOLERANCE),
        "tempo_acc2": float(bool(ratios) and min(ratios) <= TEMPO_TOLERANCE),
    }


_LIBROSA: dict[tuple[str, int], tuple[np.ndarray, float | None]] = {}
"""librosa's answers per (dataset hash, clip): they depend on the audio only, so a second
evaluation on the same data (the shuffled control) does not pay for them again."""


def librosa_beats(y: np.ndarray) -> tuple[np.ndarray, float | None]:
    """librosa's beat tracker (defaults, 22050 Hz, hop 512) on a chunk: beat times and tempo."""
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tempo, beats = librosa.beat.beat_track(y=y, sr=beat_data.SR, units="time")
    tempo = float(np.atleast_1d(tempo)[0])
    return np.asarray(beats, np.float64), (tempo if tempo > 0 else None)


def predictor(model) -> Callable[[np.ndarray], tuple[np.ndarray, float]]:
    """chunk mel [T, 84] -> (beat activation [T], beat probability). One graph for every length:
    an eager call steps the LSTM in Python (about 1 s a clip), the graph takes milliseconds."""
    import tensorflow as tf

    graph = tf.function(lambda x: model(x, training=False),
                        input_signature=[tf.TensorSpec([None, None, 84], tf.float32)])

    def run(mel: np.ndarray) -> tuple[np.ndarray, float]:
        act, prob = graph(mel[np.newaxis].astype(np.float32))
        return act.numpy()[0, :, 0], float(prob.numpy()[0, 0])

    return run


METRICS = ("f_measure", "cmlt", "amlt", "tempo_acc1", "tempo_acc2")


def graph_predictor(graph: OnnxGraph) -> Callable[[np.ndarray], tuple[np.ndarray, float]]:
    """`predictor` for an exported graph."""

    def run(mel: np.ndarray) -> tuple[np.ndarray, float]:
        act, prob = graph.outputs(mel[np.newaxis])
        return act[0, :, 0], float(prob[0, 0])

    return run


EVALUATES_ONNX = True
"""`evaluate` can score an exported graph instead of the checkpoint's model (INT8 acceptance)."""


def evaluate(checkpoint: Path, data: Dataset, progress: Progress = no_progress, onnx_model: Path | None = None) -> Evaluation:
    """Held-out clips through the model (`onnx_model`: that exported graph instead) and the decoder."""
    configure_tensorflow(0, 2)
    import warnings

    from exporters.keras_onnx import load_keras

    predict = (graph_predictor(OnnxGraph(onnx_model, SPEC, threads=2)) if onnx_model
               else predictor(load_keras(SPEC, Path(checkpoint))))
    held: beat_data.BeatSplit = data.splits["heldout"]
    per_clip: list[dict] = []
    timing = {"model_s": 0.0, "decode_s": 0.0, "librosa_s": 0.0}
    for i in range(len(held)):
        progress(f"scoring held-out clip {i + 1}/{len(held)}")
        row, ref = held.rows[i], held.beat_times(i)
        t0 = time.perf_counter()
        act, prob = predict(held.frames(i))
        t1 = time.perf_counter()
        est = decoder.decode(act)
        t2 = time.perf_counter()
        if (data.hash, i) not in _LIBROSA:
            _LIBROSA[data.hash, i] = librosa_beats(held.waveform(i))
        lib_beats, lib_bpm = _LIBROSA[data.hash, i]
        t3 = time.perf_counter()
        timing["model_s"] += t1 - t0
        timing["decode_s"] += t2 - t1
        timing["librosa_s"] += t3 - t2
        clip = {"kind": row["kind"], "genre": row["genre"], "duration_s": row["duration_s"],
                "has_beat": bool(held.has_beat[i]), "intensity": row.get("intensity_a"),
                "beat_probability": prob, "bpm": est.bpm, "confidence": est.confidence, "beats": len(est.times),
                "librosa_bpm": lib_bpm, "librosa_beats": len(lib_beats), "true_bpm": row.get("bpm")}
        if held.has_beat[i]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clip["model"] = beat_scores(ref, est.times, row["bpm"], est.bpm)
                clip["librosa"] = beat_scores(ref, lib_beats, row["bpm"], lib_bpm)
                grid = np.arange(0, row["duration_s"], 0.5)
                clip["grid_120bpm"] = beat_scores(ref, grid, row["bpm"], 120.0)
        per_clip.append(clip)
    rows = _rows(per_clip)
    n = len(held)
    extra = {"clips": per_clip, "timing_ms_per_clip": {k: 1000 * v / max(n, 1) for k, v in timing.items()}}
    samples = [float(c["model"]["f_measure"]) for c in per_clip if c["has_beat"]]
    return Evaluation(rows, headline="heldout.f_measure", extra=extra, samples=samples)


def _rows(clips: list[dict]) -> list[MetricRow]:
    rows: list[MetricRow] = []
    beat = [c for c in clips if c["has_beat"]]

    def add(subset: str, group: list[dict], metrics=METRICS) -> None:
        if not group:
            return
        for m in metrics:
            rows.append(MetricRow(subset, m, float(np.mean([c["model"][m] for c in group])),
                                  {b: float(np.mean([c[b][m] for c in group])) for b in ("librosa", "grid_120bpm")}))

    add("heldout", beat)
    for kind in ("single", "blend", "entry"):
        add(kind, [c for c in beat if c["kind"] == kind], ("f_measure", "tempo_acc1"))
    add("short_chunks", [c for c in beat if c["duration_s"] <= 4.0], ("f_measure", "tempo_acc1"))
    # Quiet tracks (intensity < 0.25) often have no kick and no snare: the beat is only implied.
    add("intensity_low", [c for c in beat if c["intensity"] < 0.25], ("f_measure", "tempo_acc1"))
    add("intensity_high", [c for c in beat if c["intensity"] >= 0.25], ("f_measure", "tempo_acc1"))
    for genre in sorted({c["genre"] for c in beat}):
        add(genre, [c for c in beat if c["genre"] == genre], ("f_measure", "tempo_acc1"))
    truth = np.array([c["has_beat"] for c in clips])
    model_says = np.array([c["beat_probability"] >= 0.5 for c in clips])
    librosa_says = np.array([c["librosa_beats"] >= 2 for c in clips])
    rows.append(MetricRow("nobeat", "accuracy", float(np.mean(model_says == truth)),
                          {"librosa": float(np.mean(librosa_says == truth)), "always_beat": float(np.mean(truth))}))
    quiet = [c for c in clips if not c["has_beat"]]
    if quiet:  # beats reported where there are none, per clip
        rows.append(MetricRow("nobeat", "false_beats", float(np.mean([c["beats"] for c in quiet])),
                              {"librosa": float(np.mean([c["librosa_beats"] for c in quiet]))}))
    return rows
