"""The transformers side of the exporter: a local HF directory -> ONNX logits graph + tokenizer."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase

from djserve.specs.base import ModelSpec
from exporters import torch_onnx
from exporters.errors import CheckpointError, one_line

TOKENIZER_DIR = "tokenizer"


def framework_version() -> str:
    return f"transformers {transformers.__version__} / torch {torch.__version__}"


class LogitsOnly(torch.nn.Module):
    """Plain-tensor signature for export: (input_ids, attention_mask) -> logits."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@dataclass
class HFCheckpoint:
    directory: Path
    model: LogitsOnly
    tokenizer: PreTrainedTokenizerBase

    @property
    def vocab_size(self) -> int:
        return int(self.model.model.config.vocab_size)


def load_hf(spec: ModelSpec, directory: Path) -> HFCheckpoint:
    if not directory.is_dir():
        raise CheckpointError(f"{spec.name}: checkpoint {directory} is not a Hugging Face model directory")
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{spec.name}: {directory} has no config.json (not a Hugging Face model directory)")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"{spec.name}: cannot load {directory}: {type(exc).__name__}: {one_line(exc)}") from None
    labels = spec.output("logits").labels
    if model.config.num_labels != len(labels):
        raise CheckpointError(
            f"{spec.name}: {directory} classifies {model.config.num_labels} labels, the contract needs {len(labels)} {labels}"
        )
    if not tokenizer.is_fast:
        raise CheckpointError(f"{spec.name}: {directory}: a fast tokenizer (tokenizer.json) is required")
    return HFCheckpoint(directory, LogitsOnly(model.eval()).eval(), tokenizer)


def sample_feeds(spec: ModelSpec, ckpt: HFCheckpoint, rng: np.random.Generator, plan):
    """Random token ids inside the checkpoint's vocabulary, with right-padded rows.

    `plan`: (batch size, axis sizes) pairs, as `sources.parity_plan` gives them."""
    feeds = []
    for batch, axes in plan:
        n = axes["tokens"]
        ids = rng.integers(3, ckpt.vocab_size, size=(batch, n), dtype=np.int64)
        mask = np.ones((batch, n), dtype=np.int64)
        for row in range(1, batch):  # every row but the first has padding at the end
            keep = int(rng.integers(1, n + 1))
            mask[row, keep:] = 0
            ids[row, keep:] = ckpt.tokenizer.pad_token_id
        feeds.append((axes, {"input_ids": ids, "attention_mask": mask}))
    return feeds


def to_onnx(ckpt: HFCheckpoint, spec: ModelSpec, example: dict[str, np.ndarray]) -> onnx.ModelProto:
    return torch_onnx.to_onnx(ckpt.model, spec, example)


def save_tokenizer(ckpt: HFCheckpoint, version_dir: Path) -> None:
    ckpt.tokenizer.save_pretrained(version_dir / TOKENIZER_DIR)


def reference_checkpoint(seed: int) -> tuple[Path, tempfile.TemporaryDirectory]:
    from exporters.architectures.sentiment import build_reference_checkpoint

    tmp = tempfile.TemporaryDirectory(prefix="djserve-sentiment-ref-")
    return build_reference_checkpoint(Path(tmp.name) / "reference", seed), tmp


__all__ = ["HFCheckpoint", "load_hf", "sample_feeds", "save_tokenizer", "to_onnx"]
