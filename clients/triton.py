"""Call Triton models and ensembles over gRPC or HTTP with tensors named and typed by the specs.

    client = TritonModelClient("127.0.0.1:8001")             # gRPC; protocol="http" for :8000
    out = client.infer("sentiment_pipeline", {"text": np.array([[b"great set!"]], dtype=object)})
    out["label"], out["probabilities"]
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np

from djserve import specs
from djserve.specs.base import ModelSpec

Protocol = Literal["grpc", "http"]


class TritonModelClient:
    def __init__(self, url: str, protocol: Protocol = "grpc", timeout_s: float = 30.0):
        self.protocol = protocol
        self.timeout_s = timeout_s
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc
        self._tc = tc
        self._client = tc.InferenceServerClient(url=url, **({} if protocol == "grpc" else {"network_timeout": timeout_s}))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TritonModelClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        if model is None:
            return bool(self._client.is_server_ready())
        return bool(self._client.is_model_ready(model, "" if version is None else str(version)))

    def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None
    ) -> dict[str, np.ndarray]:
        """Run one request; `inputs` are batched arrays named as in the model's spec."""
        spec = specs.get(model)
        request = [self._input(spec, name, np.asarray(inputs[name])) for name in _require(spec, inputs)]
        outputs = [self._tc.InferRequestedOutput(name) for name in spec.output_names]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._client.infer(
            model, request, model_version="" if version is None else str(version), outputs=outputs, **kwargs
        )
        return {name: result.as_numpy(name) for name in spec.output_names}

    def statistics(self, model: str) -> dict:
        stats = self._client.get_inference_statistics(model)
        if self.protocol == "grpc":
            from google.protobuf.json_format import MessageToDict

            stats = MessageToDict(stats, preserving_proto_field_name=True)
        return stats

    def _input(self, spec: ModelSpec, name: str, array: np.ndarray):
        tensor = spec.input(name)
        array = array.astype(tensor.numpy_dtype, copy=False)
        inp = self._tc.InferInput(name, list(array.shape), tensor.dtype)
        inp.set_data_from_numpy(array)
        return inp


def _require(spec: ModelSpec, inputs: Mapping[str, np.ndarray]) -> list[str]:
    missing = [n for n in spec.input_names if n not in inputs]
    extra = [n for n in inputs if n not in spec.input_names]
    if missing or extra:
        raise ValueError(f"{spec.name}: inputs must be {spec.input_names} (missing {missing}, unknown {extra})")
    return spec.input_names
