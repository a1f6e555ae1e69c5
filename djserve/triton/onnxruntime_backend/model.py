"""A python-based Triton backend named `onnxruntime` that runs `onnxruntime.InferenceSession`.

The `nvidia-pytriton` wheel ships only Triton's python backend. Installed as
`<backend-directory>/onnxruntime/model.py`, this file makes Triton accept standard
`platform: "onnxruntime_onnx"` / `backend: "onnxruntime"` models unchanged. On the NGC container
the native `libtriton_onnxruntime.so` takes precedence and this file is never used.

Triton's dynamic batcher hands `execute` several requests at once; the python backend does not
batch for us, so requests whose non-batch shapes agree are concatenated along axis 0, run in one
`session.run` and split back. Every request gets exactly one response, in order.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.model_name = config.get("name", args.get("model_name", "?"))
        # max_batch_size > 0: axis 0 of every tensor is the batch axis, so requests can be joined.
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.input_names = [i["name"] for i in config.get("input", [])]
        # Triton checks request dtypes against the config, but ONNX outputs can differ from the
        # config (e.g. a float64 graph output declared TYPE_FP32): cast to what the config says.
        self.output_dtypes = {
            o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config.get("output", [])
        }
        self.output_names = list(self.output_dtypes)

        # Same keys as the native backend's `parameters { key: "intra_op_thread_count" ... }`.
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        # A model that serves uploads yields the cores to real-time ones (djserve's `cpu_nice`, set
        # for background specs). Every thread of the stub (a nice value is per thread on Linux), and
        # before the session exists, so ONNX Runtime's pool inherits it.
        if params.get("cpu_nice", "").strip():
            _lower_cpu_priority(int(params["cpu_nice"]))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        for key, attr in (("intra_op_thread_count", "intra_op_num_threads"),
                          ("inter_op_thread_count", "inter_op_num_threads")):
            if params.get(key, "").strip():
                setattr(options, attr, int(params[key]))
        # Idle intra-op threads spin for a while after each run by default: ~46 ms of a core per call
        # of a 0.2 ms model at a few calls a second, taken from the gateway and the other models on a
        # shared CPU. Off here unless the config says `allow_spinning: "1"`.
        options.add_session_config_entry("session.intra_op.allow_spinning", params.get("allow_spinning", "0").strip() or "0")

        # args["model_repository"] is the model's own directory (<repo>/<model>), as for python models.
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], str(args["model_version"]), filename)
        self.session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
        if not self.output_names:  # no outputs in the config: serve all graph outputs as they come
            self.output_names = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list) -> list:
        responses: list[Any] = [None] * len(requests)
        feeds: list[dict[str, np.ndarray] | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            try:
                feeds[i] = self._read_inputs(request)
            except Exception as e:  # noqa: BLE001 - becomes this request's error response
                responses[i] = _error(f"{self.model_name}: bad request: {e}")
                continue
            if self.batched:
                key = tuple((n, a.dtype.str, a.shape[1:]) for n, a in sorted(feeds[i].items()))
            else:
                key = ("request", i)  # no batch axis: every request runs on its own
            groups.setdefault(key, []).append(i)

        for members in groups.values():
            # An exception (e.g. ORT rejecting a value) becomes an error response, never a stub
            # crash. One bad request must not fail the requests it was batched with, so a failed
            # batch is retried request by request and only the ones that fail alone get the error.
            attempts = [members] if len(members) == 1 else [members, *([i] for i in members)]
            for attempt in attempts:
                try:
                    self._run_group(requests, feeds, attempt, responses)
                except Exception as e:  # noqa: BLE001
                    if len(attempt) == 1:
                        responses[attempt[0]] = _error(f"{self.model_name}: {type(e).__name__}: {e}")
                    continue
                if attempt is members:
                    break  # the whole batch worked: no retries
        return responses

    def _read_inputs(self, request) -> dict[str, np.ndarray]:
        out = {}
        for name in self.input_names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:  # optional input not sent
                continue
            array = tensor.as_numpy()
            if array.dtype == np.object_:  # TYPE_STRING arrives as bytes; ORT wants str
                array = np.vectorize(_to_str, otypes=[np.object_])(array) if array.size else array
            out[name] = array
        return out

    def _run_group(self, requests, feeds, members, responses) -> None:
        if len(members) == 1:
            joined = feeds[members[0]]
        else:
            joined = {n: np.concatenate([feeds[i][n] for i in members], axis=0) for n in feeds[members[0]]}
        results = self.session.run(self.output_names, joined)
        outputs = dict(zip(self.output_names, results))

        sizes = [_batch_size(feeds[i]) for i in members]
        offsets = np.cumsum(sizes)[:-1]
        split: dict[str, list[np.ndarray]] = {}
        for name, value in outputs.items():
            value = np.asarray(value)
            if self.output_dtypes.get(name) is not None and value.dtype != self.output_dtypes[name]:
                value = value.astype(self.output_dtypes[name])
            if len(members) == 1:
                split[name] = [value]
            else:
                if value.ndim == 0 or value.shape[0] != sum(sizes):
                    raise ValueError(
                        f"output {name!r} has shape {value.shape}, no batch axis of size {sum(sizes)} "
                        "to split back over the batched requests"
                    )
                split[name] = np.split(value, offsets, axis=0)

        for k, i in enumerate(members):
            wanted = set(requests[i].requested_output_names() or self.output_names)
            tensors = [pb_utils.Tensor(n, split[n][k]) for n in self.output_names if n in wanted]
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.session = None


def _batch_size(feed: dict[str, np.ndarray]) -> int:
    return next(iter(feed.values())).shape[0] if feed else 0


def _to_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _error(message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def _lower_cpu_priority(increment: int) -> None:
    """djserve.process.lower_cpu_priority: this file runs in Triton's stub and imports no djserve."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        os.nice(increment)
        return
    for tid in map(int, os.listdir(tasks)):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        except ProcessLookupError:
            pass
