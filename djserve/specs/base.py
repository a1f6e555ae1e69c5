"""The shape of a model contract.

A `ModelSpec` is the single source of truth for one Triton model: the exporter builds the ONNX
graph's input/output names and dynamic axes from it, `djserve.repository` renders its
`config.pbtxt` from it, the tests and the clients build and check tensors from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

Framework = Literal["pytorch", "keras", "transformers", "python", "ensemble"]

#: Triton data type -> numpy dtype. Only the types the contracts use.
NUMPY_DTYPES: Mapping[str, type] = {
    "FP32": np.float32,
    "INT64": np.int64,
    "BYTES": np.object_,
}

Dim = int | str
"""A positive int is a fixed size; a string names a dynamic axis ("time", "tokens", ...).
Two tensors that name the same axis must agree on its size in one request."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: Literal["FP32", "INT64", "BYTES"]
    dims: tuple[Dim, ...]
    """Shape WITHOUT the batch axis (Triton's `dims` when max_batch_size > 0)."""
    description: str = ""
    labels: tuple[str, ...] = ()
    """Names of the entries of the last axis (scores), if any."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """Valid values: [lo, hi] for floats, [lo, hi) for integers. Used to draw test inputs."""

    @property
    def triton_dims(self) -> list[int]:
        return [d if isinstance(d, int) else -1 for d in self.dims]

    @property
    def numpy_dtype(self) -> type:
        return NUMPY_DTYPES[self.dtype]

    @property
    def dynamic_axes(self) -> dict[int, str]:
        """Dynamic axes of the full batched tensor (axis 0 is always the batch)."""
        axes = {0: "batch"}
        axes.update({i + 1: d for i, d in enumerate(self.dims) if isinstance(d, str)})
        return axes

    def shape(self, batch: int, axes: Mapping[str, int]) -> tuple[int, ...]:
        """Concrete batched shape, taking dynamic axis sizes from `axes`."""
        return (batch, *(d if isinstance(d, int) else axes[d] for d in self.dims))


@dataclass(frozen=True)
class Batching:
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 2000
    """How long Triton may hold a request to form a larger batch. 0 on a CPU: requests that queue
    while an instance is busy form the next batch anyway, and a delay taxes light load (1 ms halved
    sentiment's throughput at concurrency 1 for +9% at 16; loadtest/RESULTS.md)."""
    dynamic: bool = True
    gateway_joins: bool = True
    """The gateway joins concurrent calls into one (bentos.batching). False where one request is
    already a big batch (the recommender scores the whole catalogue per request): joining only
    serialises calls that Triton's instances would run side by side (0.85x measured)."""


#: How much lower the CPU priority of upload work is (nice increment): background models' Triton
#: instances and the gateway's featurizer processes.
BACKGROUND_NICE = 10
CPU_NICE_PARAMETER = "cpu_nice"
"""The config.pbtxt parameter a background model's nice increment is rendered into."""


#: Placement of small models, whose cost is per-request overhead rather than FLOPs: two
#: single-threaded instances overlap one batch's Python/gRPC work with another's compute
#: (+18% for sentiment, +23% for recommender pairs at concurrency 16; loadtest/RESULTS.md).
OVERHEAD_BOUND: Mapping = {"instance_count": 2, "parameters": {"intra_op_thread_count": "1"}}


@dataclass(frozen=True)
class EnsembleStep:
    model: str
    input_map: Mapping[str, str]
    """step model's input name -> ensemble tensor name"""
    output_map: Mapping[str, str]
    """step model's output name -> ensemble tensor name"""
    version: int = -1


@dataclass(frozen=True)
class ModelSpec:
    name: str
    framework: Framework
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: Batching
    description: str
    decisions: str = ""
    """Where the design documents contradict each other or cannot run: what we chose and why."""
    instance_count: int = 1
    instance_kind: Literal["KIND_AUTO", "KIND_CPU"] = "KIND_AUTO"
    """KIND_AUTO: GPU where Triton sees one (NGC container), CPU here. Python steps are KIND_CPU."""
    parameters: Mapping[str, str] = field(default_factory=dict)
    """Rendered into config.pbtxt `parameters` (backend options, tables for python steps)."""
    versions_kept: int = 2
    """version_policy latest{num_versions}: the stable version and one candidate stay loaded."""
    response_cache: bool = False
    """Triton's response cache (`response_cache { enable: true }`) for a model whose answer is a pure
    function of its inputs and whose inputs repeat (chat lines, one user's recommendations). Entries
    are keyed by model, version and the inputs' bytes, so a promoted version never answers from
    another version's entries. Served only where the server has a cache (TritonSettings.response_cache_mb)."""
    background: bool = False
    """Serves uploads, not real-time traffic: on a CPU its instances run BACKGROUND_NICE lower in CPU
    priority (config parameter CPU_NICE_PARAMETER, read by the python-based onnxruntime backend), so
    under load the kernel gives the cores to chat, live beats and recommendations first. A GPU
    (the native backend) ignores it."""
    steps: tuple[EnsembleStep, ...] = ()
    parity_axes: tuple[Mapping[str, int], ...] = ({},)
    """Dynamic-axis sizes of the random batches the exporter's parity check runs."""

    @property
    def is_exported(self) -> bool:
        """Exported models get ONNX versions; python steps and ensembles are committed code."""
        return self.framework in ("pytorch", "keras", "transformers")

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, self.name)

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, self.name)

    def feed(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """This model's inputs picked by name from arrays offered to several models (the ensemble's
        members take different subsets of one window's tensors)."""
        return {t.name: arrays[t.name] for t in self.inputs}

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def random_inputs(
        self, batch: int, axes: Mapping[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """A valid random request: floats uniform in value_range, ints in [lo, hi)."""
        feeds: dict[str, np.ndarray] = {}
        for t in self.inputs:
            shape = t.shape(batch, axes)
            lo, hi = t.value_range
            if t.dtype == "FP32":
                feeds[t.name] = rng.uniform(lo, hi, size=shape).astype(np.float32)
            elif t.dtype == "INT64":
                feeds[t.name] = rng.integers(int(lo), int(hi), size=shape, dtype=np.int64)
            else:
                raise ValueError(f"{self.name}.{t.name}: no random sampler for {t.dtype}")
        return feeds


def _by_name(tensors: tuple[TensorSpec, ...], name: str, model: str) -> TensorSpec:
    for t in tensors:
        if t.name == name:
            return t
    raise KeyError(f"model {model!r} has no tensor {name!r}")
