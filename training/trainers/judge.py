"""The AI Judge in PyTorch with the design documents' recipe: AdamW with
weight decay, MSE on the four component scores, ReduceLROnPlateau (factor 0.5), gradient clipping
at 1.0, early stopping on the validation loss with the best weights kept.

What this CPU budget changes (a few minutes on two cores, where one pass of the seed's conv stack
over a 12 s clip costs ~0.1 s):
- The convolutions keep their seeded initialisation (random convolutional features) and only their
  BatchNorm statistics are fitted to the training audio; their mel-averaged channel maps are then
  computed once per clip and cached. Everything after them is trained: the audio embedding, the
  mixing LSTM and the fusion network. A span of any length is then as cheap as its mean.
- Training uses random spans (256-512 frames) of the 12 s training clips, whose labels are exact
  (means of the label model's curves); validation uses whole clips, the evaluation whole windows.
- The mixing features are standardised with the training data's mean and standard deviation,
  stored in the model's buffers (exported with it).
The checkpoint is a state_dict, what `djserve export judge --checkpoint` takes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from djserve.specs import judge as spec_module
from exporters.architectures.judge import AIJudgeModel, build_model
from training import metrics
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.onnx_graph import OnnxGraph
from training.trainers import clips

FAMILY = "judge"
FRAMEWORK = "pytorch"
HEADS = spec_module.SPEC.output("component_scores").labels


@dataclass(frozen=True)
class Config:
    clips: int
    heldout: int
    epochs: int
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 6
    lr_patience: int = 3
    crops: tuple[int, ...] = (256, 384, 512)
    bn_calibration_clips: int = 256
    pairs: int = 12
    """Contrast pairs per factor in the evaluation."""
    threads: int = 2


PROFILES = {
    "reference": Config(clips=2400, heldout=240, epochs=40),
    "quick": Config(clips=200, heldout=60, epochs=8, bn_calibration_clips=64, pairs=4),
}


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.heldout, progress, path, config.pairs)


def _audio(data: clips.Clips, rows: np.ndarray) -> torch.Tensor:
    a = data.arrays["audio_features"][data.index[rows]].astype(np.float32)
    return torch.from_numpy(a).contiguous(memory_format=torch.channels_last)


def calibrate_batchnorm(model: AIJudgeModel, data: clips.Clips, n: int, progress: Progress) -> None:
    """Fit the conv stack's BatchNorm statistics to the audio (cumulative mean over n clips)."""
    conv = model.audio_encoder[: AIJudgeModel.CONV_LAYERS]
    for m in conv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average, not an exponential one
    conv.train()
    rows = np.arange(min(n, len(data)))
    with torch.inference_mode():
        for s in range(0, len(rows), 16):
            conv(_audio(data, rows[s : s + 16]))
            progress(f"fitting BatchNorm statistics {min(s + 16, len(rows))}/{len(rows)}")
    for m in conv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    conv.eval()


def conv_maps(model: AIJudgeModel, data: clips.Clips, progress: Progress, label: str) -> np.ndarray:
    """[N,128,T/4] float16 mel-averaged conv channels of every clip of a split."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(data), 16):
            out.append(model.conv_maps(_audio(data, np.arange(s, min(s + 16, len(data))))).numpy().astype(np.float16))
            progress(f"convolving {label} {min(s + 16, len(data))}/{len(data)}")
    return np.concatenate(out)


def _batch(maps: np.ndarray, data: clips.Clips, rows: np.ndarray, length: int | None, rng: np.random.Generator):
    """(pooled conv channels [B,128], mixing features [B,S,32], labels [B,4]) of spans of the clips."""
    b = clips.batch(data, rows, length, rng, "judge", HEADS)
    frames = b.audio.shape[-1]
    k = AIJudgeModel.CONV_STRIDE
    pooled = np.stack([maps[r, :, s // k : (s + frames) // k].astype(np.float32).mean(axis=1) for r, s in zip(rows, b.starts)])
    return torch.from_numpy(pooled), torch.from_numpy(b.mixing), torch.from_numpy(b.labels)


def _predict(model: AIJudgeModel, maps: np.ndarray, data: clips.Clips) -> np.ndarray:
    model.eval()
    rng = np.random.default_rng(0)
    out = []
    with torch.inference_mode():
        for s in range(0, len(data), 64):
            rows = np.arange(s, min(s + 64, len(data)))
            pooled, m, _ = _batch(maps, data, rows, None, rng)
            out.append(model.head(pooled, m).numpy())
    return np.concatenate(out)


def fit(
    data: Dataset, config: Config, seed: int, out_dir: Path, log: EpochLog, progress: Progress, shuffle_labels: bool = False
) -> Path:
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, val = data.splits["train"], data.splits["val"]
    if shuffle_labels:  # the control run: each clip learns another clip's scores
        train = clips.shuffled(train, rng)
    model = build_model(seed).to(memory_format=torch.channels_last)
    calibrate_batchnorm(model, train, config.bn_calibration_clips, progress)
    mean, var = clips.mixing_moments(train)
    model.mixing_mean.copy_(torch.from_numpy(mean))
    model.mixing_std.copy_(torch.from_numpy(np.sqrt(var) + 1e-3))
    train_maps, val_maps = conv_maps(model, train, progress, "training clips"), conv_maps(model, val, progress, "validation clips")

    trainable = [p for name, p in model.named_parameters() if not name.startswith("audio_encoder.") or name.startswith(f"audio_encoder.{AIJudgeModel.CONV_LAYERS + 2}.")]
    for name, p in model.named_parameters():
        p.requires_grad_(any(p is q for q in trainable))
    opt = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=config.lr_patience)
    loss_fn = torch.nn.MSELoss()
    val_y = val.labels("judge", HEADS)
    best, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    steps = int(np.ceil(len(train) / config.batch_size))
    for epoch in range(1, config.epochs + 1):
        model.train()
        model.audio_encoder[: AIJudgeModel.CONV_LAYERS].eval()  # the frozen convolutions keep their statistics
        order = rng.permutation(len(train))
        total = 0.0
        for b in range(steps):
            rows = order[b * config.batch_size : (b + 1) * config.batch_size]
            pooled, m, y = _batch(train_maps, train, rows, int(rng.choice(config.crops)), rng)
            opt.zero_grad()
            loss = loss_fn(model.head(pooled, m), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            total += loss.item() * len(rows)
        val_pred = _predict(model, val_maps, val)
        val_loss = float(np.mean((val_pred - val_y) ** 2))
        sched.step(val_loss)
        log(epoch, {
            "train_loss": total / len(train),
            "val_loss": val_loss,
            "val_r2": metrics.mean_r2(val_y, val_pred),
            "learning_rate": opt.param_groups[0]["lr"],
        })
        progress(f"epoch {epoch}/{config.epochs}: val loss {val_loss:.4f}")
        if val_loss < best - 1e-6:
            best, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                progress(f"early stop after epoch {epoch}: no val improvement for {stale} epochs")
                break
    model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{FAMILY}.pt"
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    return path


def load(checkpoint: Path) -> torch.nn.Module:
    from exporters.torch_onnx import load_torch

    return load_torch(spec_module.SPEC, build_model, Path(checkpoint), 0)


EVALUATES_ONNX = True
"""`evaluate` can score an exported graph instead of the checkpoint's model (INT8 acceptance)."""


def evaluate(checkpoint: Path, data: Dataset, progress: Progress, onnx_model: Path | None = None) -> Evaluation:
    """Whole held-out windows through the whole network, as the gateway serves them.
    `onnx_model`: score that exported graph instead of the checkpoint's model."""
    torch.set_num_threads(2)
    if onnx_model is not None:
        graph = OnnxGraph(onnx_model, spec_module.SPEC, threads=2)
        run = lambda audio, mixing: graph(audio, mixing)  # noqa: E731
    else:
        model = load(checkpoint)

        def run(audio: np.ndarray, mixing: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(audio), torch.from_numpy(mixing)).numpy()
    held = data.splits["heldout"]

    def predict(audio: np.ndarray, mixing: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(audio), 8):
            out.append(run(audio[s : s + 8], mixing[s : s + 8]))
            progress(f"scoring windows {min(s + 8, len(audio))}/{len(audio)}")
        return np.concatenate(out)

    b = clips.batch(held, np.arange(len(held)), None, np.random.default_rng(0), "judge", HEADS)
    pred = predict(b.audio, b.mixing)
    truth = held.labels("judge", HEADS)
    train_mean = data.splits["train"].labels("judge", HEADS).mean(0)
    rows = clips.regression_rows(truth, pred, HEADS, train_mean, genres=held.genres())
    rows += clips.contrast_rows(predict, data.splits["contrasts"], "judge", HEADS)
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()},
                      samples=clips.headline_samples(truth, pred, held.genres()))
