"""The check `djserve export FAMILY --quantize int8` relies on, shared by the trainers' tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def check_exported_graphs_are_scored(family: str, evaluate, checkpoint: Path, data, checkpoint_metrics: dict,
                                     headline: str, tmp_path: Path) -> None:
    """The held-out evaluation can score an exported graph: the FP32 one reproduces the checkpoint's
    headline within 1e-4, and an INT8 graph gets a figure of its own."""
    from djserve.mlops.quantize import quantize_int8
    from exporters.isolated import export_isolated
    from tests.conftest import copy_committed_repository

    result = export_isolated(family, copy_committed_repository(tmp_path / "repo"), checkpoint=checkpoint)
    fp32 = evaluate(checkpoint, data, onnx_model=result.path / "model.onnx").metrics
    assert fp32[headline] == pytest.approx(checkpoint_metrics[headline], abs=1e-4)
    int8 = evaluate(checkpoint, data, onnx_model=quantize_int8(result.path / "model.onnx", tmp_path / "int8.onnx")).metrics
    assert np.isfinite(int8[headline]) and abs(int8[headline] - fp32[headline]) < 0.2, (fp32[headline], int8[headline])
