"""Render a `config.pbtxt` from a ModelSpec, through Triton's own ModelConfig protobuf."""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from djserve.specs.base import BACKGROUND_NICE, CPU_NICE_PARAMETER, ModelSpec, TensorSpec

#: Backend options the native onnxruntime backend reads; our python-based stand-in reads them too.
ONNX_PARAMETERS = {"intra_op_thread_count": "2", "inter_op_thread_count": "1"}

_DTYPES = {"FP32": mc.TYPE_FP32, "INT64": mc.TYPE_INT64, "BYTES": mc.TYPE_STRING}


def render_config(spec: ModelSpec) -> str:
    header = f"# Generated from djserve.specs ({spec.name}) by `djserve repository`; do not edit.\n"
    return header + text_format.MessageToString(build_config(spec))


def build_config(spec: ModelSpec) -> mc.ModelConfig:
    """The model's Triton config as the protobuf (to render, or to send as a load override)."""
    cfg = mc.ModelConfig(name=spec.name, max_batch_size=spec.batching.max_batch_size)
    cfg.input.extend(_tensor(mc.ModelInput, t) for t in spec.inputs)
    cfg.output.extend(_tensor(mc.ModelOutput, t) for t in spec.outputs)
    parameters = dict(spec.parameters)

    if spec.framework == "ensemble":
        cfg.platform = "ensemble"
        for step in spec.steps:
            s = cfg.ensemble_scheduling.step.add(model_name=step.model, model_version=step.version)
            s.input_map.update(step.input_map)
            s.output_map.update(step.output_map)
    else:
        if spec.framework == "python":
            cfg.backend = "python"
        else:
            cfg.platform = "onnxruntime_onnx"
            parameters = {**ONNX_PARAMETERS, **parameters}
            if spec.background:
                parameters[CPU_NICE_PARAMETER] = str(BACKGROUND_NICE)
        cfg.version_policy.latest.num_versions = spec.versions_kept
        if spec.batching.dynamic:
            cfg.dynamic_batching.SetInParent()  # present even when every field is a default (delay 0)
            cfg.dynamic_batching.preferred_batch_size.extend(spec.batching.preferred_batch_sizes)
            cfg.dynamic_batching.max_queue_delay_microseconds = spec.batching.max_queue_delay_us
        cfg.instance_group.add(count=spec.instance_count, kind=getattr(mc.ModelInstanceGroup, spec.instance_kind))
        if spec.response_cache:
            cfg.response_cache.enable = True

    for key, value in sorted(parameters.items()):
        cfg.parameters[key].string_value = value

    return cfg


def _tensor(cls, t: TensorSpec):
    return cls(name=t.name, data_type=_DTYPES[t.dtype], dims=t.triton_dims)
