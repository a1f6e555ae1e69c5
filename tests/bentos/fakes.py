"""Test doubles for the gateway: a fake Triton client and a tiny sentiment tokenizer (no real Triton)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from bentos.settings import GatewaySettings
from djserve.traffic import FAMILIES, FamilyPolicy, PolicyStore, TrafficPolicy

WORDS = ["great", "awful", "ok", "drop", "set", "the", "is", "an", "amazing", "what", "a", "terrible", "mix"]


def write_tokenizer(repository: Path, version: int, words: list[str] = WORDS) -> Path:
    """A word-level tokenizer with XLM-R's special ids (`<pad>` = 1) at sentiment/<version>/tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    path = repository / "sentiment" / str(version) / "tokenizer" / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def sentiment_logits(inputs: Mapping[str, np.ndarray], version: int) -> np.ndarray:
    """Deterministic fake logits: the label of a row is (sum of its real token ids) mod 3."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    label = (ids * mask).sum(axis=1) % 3
    logits = np.zeros((ids.shape[0], 3), dtype=np.float32)
    logits[np.arange(ids.shape[0]), label] = 2.0
    return logits


JUDGE_OUTPUTS = {"judge": "component_scores", "technical": "technical_scores", "creative": "creative_scores"}


def judge_scores(model: str, inputs: Mapping[str, np.ndarray], version: int) -> np.ndarray:
    """[N, 4] in [0, 1]: from the mean of each window's mixing features, so louder or busier windows
    score differently; the version shifts every score a little."""
    level = inputs["mixing_features"].reshape(len(inputs["mixing_features"]), -1).mean(axis=1)
    heads = np.arange(4) / 8 + list(JUDGE_OUTPUTS).index(model) / 16 + version / 100
    return np.clip(level[:, None] * 0.5 + heads[None, :], 0.0, 1.0).astype(np.float32)


def beat_activation(mel: np.ndarray) -> np.ndarray:
    """[1, T, 1]: each frame's rise in mel energy, scaled to [0, 1] (a click is a peak)."""
    energy = mel[0].sum(axis=-1)
    rise = np.maximum(np.diff(energy, prepend=energy[:1]), 0.0)
    return (rise / max(float(rise.max()), 1e-9)).reshape(1, -1, 1).astype(np.float32)


def default_outputs(model: str, inputs: Mapping[str, np.ndarray], version: int) -> dict[str, np.ndarray]:
    if model == "sentiment":
        return {"logits": sentiment_logits(inputs, version)}
    if model == "recommender":
        items = inputs["item_ids"].reshape(-1).astype(np.float64)
        return {"score": ((items * 7919 + 13 * version) % 1000 / 1000.0).reshape(-1, 1).astype(np.float32)}
    if model in JUDGE_OUTPUTS:
        return {JUDGE_OUTPUTS[model]: judge_scores(model, inputs, version)}
    if model == "beat_tracker":
        activation = beat_activation(inputs["mel_frames"])
        return {"beat_activation": activation, "beat_probability": activation.max(axis=1).reshape(1, 1)}
    raise KeyError(f"the fake Triton does not serve {model}")


class FakeTriton:
    """`AsyncTritonModelClient`'s surface: `infer`, `is_ready`, `close`.

    `outputs(model, inputs, version)` makes the answers; `fail[(model, version)]` is an exception
    to raise; `hold` is a set of versions whose calls wait for `release` to be set."""

    def __init__(self, outputs: Callable[[str, Mapping[str, np.ndarray], int], dict] = default_outputs) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, int, dict[str, np.ndarray]]] = []
        self.fail: dict[tuple[str, int], BaseException] = {}
        self.hold: set[int] = set()
        self.release: asyncio.Event | None = None

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None) -> dict[str, np.ndarray]:
        self.calls.append((model, version, {k: np.array(v) for k, v in inputs.items()}))
        if version in self.hold:
            if self.release is None:
                self.release = asyncio.Event()
            await self.release.wait()
        exc = self.fail.get((model, version))
        if exc is not None:
            raise exc
        return self.outputs(model, inputs, version)

    def versions_called(self, model: str) -> list[int]:
        return [v for m, v, _ in self.calls if m == model]

    async def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        return True

    async def close(self) -> None:
        pass


def settings(tmp_path: Path, **overrides) -> GatewaySettings:
    """Gateway settings confined to tmp_path; `admin_token=` sets DJSERVE_ADMIN_TOKEN."""
    token = overrides.pop("admin_token", None)
    extra = {"DJSERVE_ADMIN_TOKEN": token} if token is not None else {}
    values = dict(
        repository=tmp_path / "repo",
        policy_file=tmp_path / "state" / "traffic_policy.json",
        drift_baseline_dir=tmp_path / "state" / "drift",
        predictions_dir=tmp_path / "state" / "predictions",
    )
    values.update(overrides)
    (tmp_path / "repo").mkdir(exist_ok=True)
    return GatewaySettings(**values, **extra)


def write_policy(s: GatewaySettings, **families: FamilyPolicy) -> None:
    base = {f: FamilyPolicy(stable=1) for f in FAMILIES}
    PolicyStore(s.policy_file, default=lambda: TrafficPolicy(families={})).write(TrafficPolicy(families={**base, **families}))
