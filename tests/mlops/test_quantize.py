"""INT8 versions (djserve.mlops.quantize): accepted on the held-out metric, refused beyond the bound,
recorded in the version's metadata; the held-out scorer is a fake here (training's is tested with
the sentiment trainer)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from djserve.mlops.quantize import MAX_LOSS, export_int8
from djserve.repository import ModelRepository
from djserve.specs import recommender
from exporters.errors import ExportError
from tests.conftest import copy_committed_repository


def scorer(fp32: float, int8: float, calls: list):
    def evaluate_graph(family, checkpoint, graph, profile):
        calls.append((family, graph.name, profile, checkpoint.exists()))
        value = int8 if "int8" in graph.name else fp32
        return {"headline": "heldout.ndcg_at_10", "metrics": {"heldout.ndcg_at_10": value}}
    return evaluate_graph


def test_an_int8_version_within_the_bound_is_written_with_its_figures(tmp_path):
    repo = copy_committed_repository(tmp_path / "model_repository")
    calls: list = []
    result, q = export_int8("recommender", repo, scorer(0.200, 0.195, calls), profile="quick")
    assert [c[1] for c in calls] == ["model.onnx", "model.int8.onnx"] and all(c[2] == "quick" and c[3] for c in calls)
    assert result.version == 1 and ModelRepository(repo).versions("recommender") == [1]
    meta = json.loads((result.path / "metadata.json").read_text())
    assert meta["extra"]["quantization"] == q.to_dict() and meta["extra"]["quantization"]["loss"] == pytest.approx(0.005)
    assert meta["parity"]["max_abs_diff"]  # the FP32 graph's parity, checked before quantizing
    assert q.int8_bytes < 0.5 * q.fp32_bytes  # int8 weights
    session = ort.InferenceSession(str(result.path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert any(node.op_type.startswith(("DynamicQuantize", "MatMulInteger", "QLinear")) for node in
               __import__("onnx").load(str(result.path / "model.onnx")).graph.node)
    feeds = recommender.SPEC.random_inputs(4, {}, np.random.default_rng(0))
    (score,) = session.run(["score"], feeds)
    assert score.shape == (4, 1) and np.isfinite(score).all()


def test_an_int8_version_that_loses_more_is_refused_and_nothing_is_written(tmp_path):
    repo = copy_committed_repository(tmp_path / "model_repository")
    with pytest.raises(ExportError, match=r"INT8 refused: held-out heldout.ndcg_at_10 0.2000 \(FP32\) -> 0.1800 \(INT8\) "
                                          r"loses 0.0200 > 0.01; nothing was written"):
        export_int8("recommender", repo, scorer(0.200, 0.180, []))
    assert ModelRepository(repo).versions("recommender") == [] and MAX_LOSS == 0.01
