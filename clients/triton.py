"""Call Triton models and ensembles over gRPC or HTTP with tensors named and typed by the specs.

    client = TritonModelClient("127.0.0.1:8001")             # gRPC; protocol="http" for :8000
    out = client.infer("sentiment_pipeline", {"text": np.array([[b"great set!"]], dtype=object)})
    out["label"], out["probabilities"]

`AsyncTritonModelClient` is the asyncio gRPC twin (what the gateway uses).
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np

from djserve import specs
from djserve.specs.base import ModelSpec

Protocol = Literal["grpc", "http"]


def build_request(tc, model: str, inputs: Mapping[str, np.ndarray]) -> tuple[ModelSpec, list, list]:
    """(spec, InferInputs, InferRequestedOutputs) for `model`, checked against its spec.

    `tc` is the tritonclient module of the protocol (tritonclient.grpc or tritonclient.http)."""
    spec = specs.get(model)
    missing = [n for n in spec.input_names if n not in inputs]
    extra = [n for n in inputs if n not in spec.input_names]
    if missing or extra:
        raise ValueError(f"{spec.name}: inputs must be {spec.input_names} (missing {missing}, unknown {extra})")
    request = []
    for tensor in spec.inputs:
        array = np.asarray(inputs[tensor.name]).astype(tensor.numpy_dtype, copy=False)
        inp = tc.InferInput(tensor.name, list(array.shape), tensor.dtype)
        inp.set_data_from_numpy(array)
        request.append(inp)
    return spec, request, [tc.InferRequestedOutput(name) for name in spec.output_names]


def _version(version: int | None) -> str:
    return "" if version is None else str(version)


class TritonModelClient:
    def __init__(self, url: str, protocol: Protocol = "grpc", timeout_s: float = 30.0):
        self.protocol = protocol
        self.timeout_s = timeout_s
        if protocol == "grpc":
            import tritonclient.grpc as tc

            self._client = tc.InferenceServerClient(url=url)
        else:
            import tritonclient.http as tc

            self._client = tc.InferenceServerClient(url=url, network_timeout=timeout_s)
        self._tc = tc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TritonModelClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        if model is None:
            return bool(self._client.is_server_ready())
        return bool(self._client.is_model_ready(model, _version(version)))

    def infer(self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None) -> dict[str, np.ndarray]:
        """Run one request; `inputs` are batched arrays named as in the model's spec."""
        spec, request, outputs = build_request(self._tc, model, inputs)
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self._client.infer(model, request, model_version=_version(version), outputs=outputs, **kwargs)
        return {name: result.as_numpy(name) for name in spec.output_names}

    def statistics(self, model: str) -> dict:
        stats = self._client.get_inference_statistics(model)
        if self.protocol == "grpc":
            from google.protobuf.json_format import MessageToDict

            stats = MessageToDict(stats, preserving_proto_field_name=True)
        return stats


class AsyncTritonModelClient:
    """asyncio gRPC client; every call is bounded by `timeout_s` (tritonclient's client_timeout)."""

    def __init__(self, url: str, timeout_s: float = 10.0, channel_args: list[tuple] | None = None):
        import tritonclient.grpc as tc
        import tritonclient.grpc.aio as aio

        self._tc = tc
        self._client = aio.InferenceServerClient(url=url, channel_args=channel_args)
        self.timeout_s = timeout_s

    async def close(self) -> None:
        await self._client.close()

    async def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        if model is None:
            return bool(await self._client.is_server_ready(client_timeout=self.timeout_s))
        return bool(await self._client.is_model_ready(model, _version(version), client_timeout=self.timeout_s))

    async def statistics(self, model: str):
        """Triton's inference statistics of every loaded version of `model` (the protobuf)."""
        return await self._client.get_inference_statistics(model, client_timeout=self.timeout_s)

    async def infer(
        self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None
    ) -> dict[str, np.ndarray]:
        spec, request, outputs = build_request(self._tc, model, inputs)
        result = await self._client.infer(
            model, request, model_version=_version(version), outputs=outputs, client_timeout=self.timeout_s
        )
        return {name: result.as_numpy(name) for name in spec.output_names}
