"""Check an exported ONNX graph against its spec: names, ranks, fixed dims, dynamic axes.

Every framework's export goes through this, so no converter can silently freeze a batch or time
axis (an example input of batch 1 can do that) or rename a tensor the clients rely on.
"""

from __future__ import annotations

import onnx

from djserve.specs.base import ModelSpec, TensorSpec
from exporters.errors import ExportError


def check_graph(proto: onnx.ModelProto, spec: ModelSpec) -> None:
    """Raise ExportError on any mismatch; name the dynamic axes as the spec does ("batch", "frames")."""
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    got_in, got_out = [i.name for i in inputs], [o.name for o in graph.output]
    if sorted(got_in) != sorted(spec.input_names) or got_out != spec.output_names:
        raise ExportError(
            f"{spec.name}: ONNX graph I/O {got_in} -> {got_out} does not match the spec "
            f"{spec.input_names} -> {spec.output_names}"
        )
    for value_info in inputs:
        _check_axes(spec.name, "input", value_info, spec.input(value_info.name))
    for value_info in graph.output:
        _check_axes(spec.name, "output", value_info, spec.output(value_info.name))


def _check_axes(model: str, kind: str, value_info: onnx.ValueInfoProto, want: TensorSpec) -> None:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        if kind == "input":
            raise ExportError(f"{model}: ONNX {kind} {want.name!r} has no shape")
        return
    dims = tensor_type.shape.dim
    expected = ("batch", *want.dims)
    if len(dims) != len(expected):
        raise ExportError(f"{model}: ONNX {kind} {want.name!r} has rank {len(dims)}, the spec {len(expected)}")
    for dim, exp in zip(dims, expected):
        if isinstance(exp, int):
            if dim.HasField("dim_value") and dim.dim_value != exp:
                raise ExportError(f"{model}: ONNX {kind} {want.name!r} has dim {dim.dim_value}, the spec {exp}")
            if not dim.HasField("dim_value"):
                dim.dim_value = exp
        elif dim.HasField("dim_value"):
            raise ExportError(f"{model}: ONNX {kind} {want.name!r} axis {exp!r} was frozen to {dim.dim_value}")
        else:
            dim.dim_param = exp
