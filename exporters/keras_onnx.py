"""The Keras side of the exporter: load a checkpoint, convert it to ONNX, run the source model.

Writes no files; versions, parity and the model repository are handled by the caller.

Checkpoints `load_keras` accepts:
- None: the architecture built from `exporters.architectures.<spec.name>.build_model(seed)`;
- `*.keras` (or a legacy full-model `*.h5`): `keras.saving.load_model(..., safe_mode=True)`;
- `*.weights.h5`: the architecture is built and the weights are loaded into it (a file whose
  weights do not fit the architecture is refused, never partly loaded).
SavedModel directories are not supported (their serving signatures rename outputs): save the
model with `model.save("x.keras")` instead. Every loaded model is checked against the spec
(input/output names, shapes, dtypes), so a checkpoint of another architecture is refused.
"""

from __future__ import annotations

import importlib
import warnings
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Mapping

import numpy as np

from djserve.specs.base import ModelSpec, TensorSpec
from exporters.errors import CheckpointError, ExportError
from exporters.errors import one_line as _one_line
from exporters.onnx_contract import check_graph

_NP_NAMES = {"FP32": "float32", "INT64": "int64"}


def framework_version() -> str:
    import keras
    import tensorflow as tf

    return f"tensorflow {tf.__version__} / keras {keras.__version__}"


def architecture(spec: ModelSpec) -> ModuleType:
    """The module `exporters.architectures.<spec.name>` (exposes `build_model` and `SPEC`)."""
    if spec.framework != "keras":
        raise ExportError(f"{spec.name}: framework is {spec.framework!r}, not 'keras'")
    try:
        return importlib.import_module(f"exporters.architectures.{spec.name}")
    except ModuleNotFoundError as e:
        raise ExportError(f"{spec.name}: no architecture module ({_one_line(e)})") from None


def load_keras(spec: ModelSpec, checkpoint: Path | str | None, seed: int = 0):
    """The source model for `spec`: freshly built (checkpoint None) or loaded, checked against the spec."""
    import keras

    arch = architecture(spec)
    if checkpoint is None:
        model = arch.build_model(seed)
    else:
        path = Path(checkpoint)
        where = f"{spec.name}: checkpoint {path}"
        if not path.exists():
            raise CheckpointError(f"{where} does not exist")
        if path.is_dir():
            raise CheckpointError(f"{where} is a directory (SavedModel is not supported; save a .keras file)")
        if path.name.endswith(".weights.h5"):
            model = arch.build_model(seed)
            _guarded(where, "is not a weights file of this architecture", lambda: model.load_weights(path))
        elif path.suffix == ".keras" and not zipfile.is_zipfile(path):
            raise CheckpointError(f"{where} is not a .keras archive (not a zip file)")
        elif path.suffix in (".keras", ".h5"):
            model = _guarded(
                where,
                "is not a loadable Keras model",
                lambda: keras.saving.load_model(path, compile=False, safe_mode=True),
            )
        else:
            raise CheckpointError(f"{where}: unsupported file type (expected .keras or .weights.h5)")
        if not isinstance(model, keras.Model):
            raise CheckpointError(f"{where} holds a {type(model).__name__}, not a keras.Model")
    problem = contract_mismatch(model, spec)
    if problem:
        where = "built architecture" if checkpoint is None else f"checkpoint {checkpoint}"
        raise CheckpointError(f"{spec.name}: {where} does not match the contract: {problem}")
    return model


def contract_mismatch(model, spec: ModelSpec) -> str | None:
    """What in the model's inputs/outputs differs from the spec (None when it matches)."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
        out_names = list(model.output_names)
    except (AttributeError, TypeError, ValueError) as e:
        return f"model has no symbolic inputs/outputs ({_one_line(e)}); build it with the functional API"
    in_names = [t.name for t in inputs]
    if sorted(in_names) != sorted(spec.input_names):
        return f"inputs {in_names} != {spec.input_names}"
    if out_names != spec.output_names:
        return f"outputs {out_names} != {spec.output_names}"
    for kind, names, tensors in (("input", in_names, inputs), ("output", out_names, outputs)):
        for name, tensor in zip(names, tensors):
            want: TensorSpec = spec.input(name) if kind == "input" else spec.output(name)
            shape = tuple(tensor.shape)
            expected = (None, *(d if isinstance(d, int) else None for d in want.dims))
            if shape != expected:
                return f"{kind} {name!r} has shape {_fmt(shape)}, contract {_fmt(expected)}"
            dtype = str(tensor.dtype)
            if dtype != _NP_NAMES.get(want.dtype):
                return f"{kind} {name!r} has dtype {dtype}, contract {want.dtype}"
    return None


def input_signature(spec: ModelSpec, model=None) -> list:
    """tf.TensorSpecs for the model's inputs (in the model's input order when a model is given)."""
    import tensorflow as tf

    names = [t.name for t in model.inputs] if model is not None else spec.input_names
    return [
        tf.TensorSpec(
            (None, *(d if isinstance(d, int) else None for d in t.dims)), t.numpy_dtype, name=t.name
        )
        for t in (spec.input(n) for n in names)
    ]


def to_onnx(model, spec: ModelSpec, opset: int = 17):
    """Convert with tf2onnx (inference mode), then check names and dynamic axes against the spec."""
    import onnx
    import tf2onnx

    problem = contract_mismatch(model, spec)
    if problem:
        raise ExportError(f"{spec.name}: model does not match the contract: {problem}")
    signature = input_signature(spec, model)
    # tf2onnx traces `model(*signature, training=False)`: a multi-input model gets ONE list argument.
    sig = signature if len(signature) == 1 else [signature]
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=opset)
    except Exception as e:  # noqa: BLE001 - any converter failure is one export error
        raise ExportError(f"{spec.name}: tf2onnx conversion failed: {_one_line(e)}") from e

    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    _rename(graph, [i.name for i in graph_inputs], [s.name for s in signature])
    _rename(graph, [o.name for o in graph.output], list(model.output_names))

    check_graph(proto, spec)
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{spec.name}: converted ONNX model is invalid: {_one_line(e)}") from e
    return proto


def run_keras(model, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the source model in inference mode; outputs by name (the spec's names, see load_keras)."""
    names = [t.name for t in model.inputs]
    missing = [n for n in names if n not in feeds]
    if missing:
        raise ExportError(f"{model.name}: feeds lack inputs {missing}")
    args = [np.asarray(feeds[n]) for n in names]
    result = model(args[0] if len(args) == 1 else args, training=False)
    if isinstance(result, Mapping):
        items = list(result.items())
    else:
        if not isinstance(result, (list, tuple)):
            result = [result]
        items = list(zip(model.output_names, result))
    return {name: np.asarray(value) for name, value in items}


# ----------------------------------------------------------------------------------------------


def _guarded(where: str, what: str, load):
    """Run a Keras load; any error, or a warning that weights were skipped, is a CheckpointError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = load()
        except Exception as e:  # noqa: BLE001 - unreadable/incompatible files raise many types
            raise CheckpointError(f"{where} {what}: {_one_line(e)}") from None
    skipped = [w for w in caught if "skipping" in str(w.message).lower() or "could not be loaded" in str(w.message)]
    if skipped:
        raise CheckpointError(f"{where} {what}: {_one_line(skipped[0].message)}")
    return result


def _rename(graph, old: list[str], new: list[str]) -> None:
    """Rename graph tensors positionally (tf2onnx may keep ':0' suffixes or TF names)."""
    for a, b in zip(old, new):
        if a == b:
            continue
        for node in graph.node:
            node.input[:] = [b if x == a else x for x in node.input]
            node.output[:] = [b if x == a else x for x in node.output]
        for vi in (*graph.input, *graph.output, *graph.value_info):
            if vi.name == a:
                vi.name = b


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
