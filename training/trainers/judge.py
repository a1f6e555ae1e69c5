"""The AI Judge in PyTorch, with the design documents' recipe (S0:296-347, S2:1787-1929): AdamW
with weight decay, MSE on the four component scores, ReduceLROnPlateau (factor 0.5), gradient
clipping at 1.0, early stopping on the validation loss with the best weights kept.

Batches are random spans of the clips (`clips.batch`), validation and evaluation whole windows.
The checkpoint is a state_dict, what `djserve export judge --checkpoint` takes.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from djserve.specs import judge as spec_module
from exporters.architectures.judge import build_model
from training.base import Dataset, EpochLog, Evaluation, Progress
from training.trainers import clips

FAMILY = "judge"
FRAMEWORK = "pytorch"
HEADS = spec_module.SPEC.output("component_scores").labels


@dataclass(frozen=True)
class Config:
    clips: int
    windows: int
    epochs: int
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 4
    lr_patience: int = 2
    crops: tuple[int, ...] = (256, 256, 384, 512)
    threads: int = 2


PROFILES = {
    "reference": Config(clips=2400, windows=150, epochs=14),
    "quick": Config(clips=200, windows=40, epochs=3, crops=(128,)),
}


def dataset(profile: str, seed: int, progress: Progress, path: Path | None = None) -> Dataset:
    config = PROFILES[profile]
    return clips.dataset(config.clips, config.windows, progress, path)


def _predict(model: torch.nn.Module, data: clips.Clips, batch_size: int = 16) -> np.ndarray:
    model.eval()
    out = []
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for s in range(0, len(data), batch_size):
            a, m, _, _ = clips.batch(data, np.arange(s, min(s + batch_size, len(data))), None, rng, "judge", HEADS)
            out.append(model(torch.from_numpy(a), torch.from_numpy(m)).numpy())
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
    # channels-last convolutions: ~1.5x faster training steps on CPU (oneDNN), same numbers.
    model = build_model(seed).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=config.lr_patience)
    loss_fn = torch.nn.MSELoss()
    val_y = val.labels("judge", HEADS)
    best, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    steps = int(np.ceil(len(train) / config.batch_size))
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for b in range(steps):
            rows = order[b * config.batch_size : (b + 1) * config.batch_size]
            a, m, _, y = clips.batch(train, rows, clips.crop_lengths(rng, config.crops), rng, "judge", HEADS)
            opt.zero_grad()
            audio = torch.from_numpy(a).contiguous(memory_format=torch.channels_last)
            loss = loss_fn(model(audio, torch.from_numpy(m)), torch.from_numpy(y))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss) * len(rows)
            progress(f"epoch {epoch}/{config.epochs} batch {b + 1}/{steps} loss {total / ((b * config.batch_size) + len(rows)):.4f}")
        val_pred = _predict(model, val)
        val_loss = float(np.mean((val_pred - val_y) ** 2))
        sched.step(val_loss)
        log(epoch, {
            "train_loss": total / len(train),
            "val_loss": val_loss,
            "val_r2": float(clips.metrics.regression(val_y.ravel(), val_pred.ravel())["r2"]),
            "learning_rate": opt.param_groups[0]["lr"],
        })
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
    torch.save(model.state_dict(), path)
    return path


def load(checkpoint: Path) -> torch.nn.Module:
    from exporters.torch_onnx import load_torch

    return load_torch(spec_module.SPEC, build_model, Path(checkpoint), 0)


def evaluate(checkpoint: Path, data: Dataset, progress: Progress) -> Evaluation:
    torch.set_num_threads(2)
    model = load(checkpoint)
    held = data.splits["heldout"]
    progress(f"scoring {len(held)} held-out windows")
    pred = _predict(model, held)
    truth = held.labels("judge", HEADS)
    train_mean = data.splits["train"].labels("judge", HEADS).mean(0)
    rows = clips.regression_rows(truth, pred, HEADS, train_mean, genres=held.genres())
    return Evaluation(rows, headline="overall.r2", extra={"predictions": pred.tolist(), "truth": truth.tolist()})


__all__ = ["FAMILY", "PROFILES", "Config", "dataset", "evaluate", "fit", "asdict"]
