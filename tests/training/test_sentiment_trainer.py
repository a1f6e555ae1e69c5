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


def test_an_exported_graph_is_scored_like_its_checkpoint_and_int8_close_to_it(fitted, data, tmp_path):
    """What INT8 acceptance relies on: the held-out evaluation of the exported FP32 graph reproduces the
    checkpoint's, and the INT8 graph's figure is comparable with it."""
    from djserve.mlops.quantize import quantize_int8
    from exporters.export import export_model
    from tests.conftest import copy_committed_repository

    ckpt, _, evaluation = fitted
    result = export_model("sentiment", copy_committed_repository(tmp_path / "repo"), checkpoint=ckpt)
    fp32 = trainer.evaluate(ckpt, data, no_progress, onnx_model=result.path / "model.onnx").metrics
    assert fp32["heldout.accuracy"] == pytest.approx(evaluation.metrics["heldout.accuracy"], abs=1e-9)
    assert fp32["gold.accuracy"] == pytest.approx(evaluation.metrics["gold.accuracy"], abs=1e-9)
    int8_file = quantize_int8(result.path / "model.onnx", tmp_path / "model.int8.onnx")
    int8 = trainer.evaluate(ckpt, data, no_progress, onnx_model=int8_file).metrics
    assert abs(int8["heldout.accuracy"] - fp32["heldout.accuracy"]) < 0.05, (int8["heldout.accuracy"], fp32["heldout.accuracy"])
    assert int8_file.stat().st_size < 0.5 * (result.path / "model.onnx").stat().st_size


def test_export_quantize_int8_writes_an_accepted_version(fitted, tmp_path, monkeypatch):
    """`djserve export sentiment --quantize int8`: the FP32 and INT8 graphs scored on the quick
    profile's held-out chat (training's evaluation, in its own process), accepted, the figures in the
    metadata. (A refusal writing nothing is tested in tests/mlops/test_quantize.py.)"""
    import json

    from typer.testing import CliRunner

    from djserve.cli import app
    from tests.conftest import copy_committed_repository

    ckpt, _, _ = fitted
    monkeypatch.setenv("DJSERVE_STATE_DIR", str(tmp_path / "state"))
    repo = copy_committed_repository(tmp_path / "repo")
    args = ["export", "sentiment", "--checkpoint", str(ckpt), "--quantize", "int8", "--profile", "quick", "--repository", str(repo)]
    run = CliRunner().invoke(app, args)
    # measured here: held-out accuracy 0.7949 for both graphs (the quick model; INT8 loses nothing)
    assert run.exit_code == 0, run.output
    q = json.loads((repo / "sentiment" / "1" / "metadata.json").read_text())["extra"]["quantization"]
    assert q["headline"] == "heldout.accuracy" and q["loss"] <= q["max_loss"] == 0.01 and q["int8"] > 0.6, q
    assert q["int8_bytes"] < 0.6 * q["fp32_bytes"] and (repo / "sentiment" / "1" / "tokenizer").is_dir()
    assert "INT8: held-out heldout.accuracy" in run.output
