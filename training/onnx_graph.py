"""An exported ONNX graph scored in place of the framework model: the held-out evaluation of an
INT8 (or any exported) graph, which is what INT8 acceptance compares with the FP32 graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from djserve.specs.base import ModelSpec


class OnnxGraph:
    """`graph(*arrays)`: the spec's inputs in order -> its first output (one ONNX Runtime session)."""

    def __init__(self, path: Path, spec: ModelSpec, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.spec = spec
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        return self.outputs(*arrays)[0]

    def outputs(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Every output of the spec, in its order."""
        feeds = {t.name: np.asarray(a, dtype=t.numpy_dtype) for t, a in zip(self.spec.inputs, arrays, strict=True)}
        return self.session.run(self.spec.output_names, feeds)

    def predict(self, inputs, batch_size: int | None = None, verbose: int = 0) -> np.ndarray:
        """Keras' `model.predict(inputs)`, for evaluation code written against a Keras model (whose
        inputs are in the spec's order)."""
        return self(*inputs)
