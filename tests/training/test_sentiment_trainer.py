"""The sentiment trainer on its quick profile: it learns, a label-shuffled control does not, it is
reproducible, and its checkpoint is a directory the exporter loads."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from djserve.specs import sentiment as spec
from exporters.hf_onnx import load_hf
from training.base import no_progress
from training.trainers import sentiment as trainer


@pytest.fixture(scope="module")
def data():
    return trainer.dataset("quick", 0, no_progress)


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    logs = []
    out = tmp_path_factory.mktemp("quick")
    ckpt = trainer.fit(data, trainer.PROFILES["quick"], 0, out, lambda e, m: logs.append((e, dict(m))), no_progress)
    return ckpt, logs, trainer.evaluate(ckpt, data, no_progress)


def test_dataset_has_the_four_splits(data):
    assert set(data.splits) >= {"train", "val", "heldout", "gold"} and len(data.hash) == 64
    assert all(data.splits[s] for s in ("train", "val", "heldout", "gold"))


def test_quick_fit_beats_the_majority_baseline_by_a_clear_margin(fitted):
    _, logs, evaluation = fitted
    m = evaluation.metrics
    assert evaluation.headline == "heldout.accuracy"
    assert m["heldout.accuracy"] > m["heldout.accuracy.baseline_majority"] + 0.2, m["heldout.accuracy"]
    assert m["heldout.macro_f1"] > m["heldout.macro_f1.baseline_majority"] + 0.3, m["heldout.macro_f1"]
    for lang in ("es", "en", "pt", "fr", "de", "it"):
        for subset in (f"heldout.{lang}", f"gold.{lang}"):
            assert {f"{subset}.accuracy", f"{subset}.macro_f1"} <= set(m)
    assert "gold.accuracy" in m and evaluation.extra["confusion"]["heldout"]
    assert [e for e, _ in logs] == list(range(1, len(logs) + 1))
    assert all({"train_loss", "val_loss", "val_accuracy", "learning_rate"} <= set(x) for _, x in logs)


def test_shuffled_labels_score_near_chance(data, tmp_path):
    ckpt = trainer.fit(data, trainer.PROFILES["quick"], 0, tmp_path, lambda *_: None, no_progress, shuffle_labels=True)
    m = trainer.evaluate(ckpt, data, no_progress).metrics
    assert abs(m["heldout.accuracy"] - 1 / 3) < 0.08, m["heldout.accuracy"]


def test_same_seed_gives_identical_weights(data, tmp_path):
    one_epoch = dataclasses.replace(trainer.PROFILES["quick"], max_epochs=1)

    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        ckpt = trainer.fit(data, one_epoch, seed, tmp_path / name, lambda *_: None, no_progress)
        return load_file(ckpt / "model.safetensors")

    a, b, c = weights(5, "a"), weights(5, "b"), weights(6, "c")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a/hf/tokenizer.json").read_bytes() == (tmp_path / "b/hf/tokenizer.json").read_bytes()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_loads_for_export_and_tokenises_like_the_gateway(fitted, data):
    ckpt, _, _ = fitted
    hf = load_hf(spec.SPEC, ckpt)
    assert hf.tokenizer.is_fast and hf.model.model.config.num_labels == len(spec.LABELS)
    gateway = Tokenizer.from_file(str(ckpt / "tokenizer.json"))  # what bentos/sentiment.py loads
    assert gateway.token_to_id("<pad>") == 1
    text = "INCREÍBLEEE el drop 🔥🔥 pero no me gusta nada"
    ids = gateway.encode(text).ids
    assert ids == hf.tokenizer(text)["input_ids"]  # training tokenised exactly like the gateway
    assert ids == gateway.encode("increible el drop 🔥🔥 pero no me gusta nada").ids  # the folding ships
    with torch.no_grad():
        logits = hf.model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    assert logits.shape == (1, len(spec.LABELS))
