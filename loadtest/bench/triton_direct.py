"""Triton over gRPC, dynamic batching on and off, at each concurrency, with the batches it formed.

Batching is switched by reloading the model with a config override (explicit model control): the
same ONNX file and instance count, only `dynamic_batching` present or absent. The response cache is
off for these points (their requests cycle through a few prebuilt ones: every repeat would be a hit).
The average batch, queue and compute times come from Triton's own statistics over the load point.
"""

from __future__ import annotations

import asyncio

from typing import Literal

import numpy as np
import tritonclient.http as triton_http
from pydantic import BaseModel, ConfigDict
from google.protobuf import json_format

from clients.triton import AsyncTritonModelClient
from djserve import specs
from djserve.repository.config import build_config
from loadtest.bench.measure import LoadPoint, closed_loop
from loadtest.bench.workloads import Workload

Batching = Literal["on", "off"]


class TritonPoint(LoadPoint):
    workload: str
    batching: Batching
    avg_batch: float
    """Rows per model execution (Triton's inference_count / execution_count)."""
    queue_ms: float
    compute_ms: float
    """Mean per request: time queued for a batch, and the model's compute (input+infer+output)."""


class Placement(BaseModel):
    """How Triton runs a model: instances, ONNX Runtime intra-op threads each, batching queue delay."""

    model_config = ConfigDict(frozen=True)
    instances: int
    threads: int
    delay_us: int

    def __str__(self) -> str:
        return f"{self.instances} instance(s) x {self.threads} thread(s), delay {self.delay_us} us"


def model_config(model: str, batching: Batching = "on", cache: bool = False, placement: Placement | None = None) -> str:
    """The spec's config with dynamic batching on or off, the response cache (where the spec has
    one) on or off, and the spec's placement or `placement`."""
    cfg = build_config(specs.get(model))
    if placement is not None:
        cfg.instance_group[0].count = placement.instances
        cfg.parameters["intra_op_thread_count"].string_value = str(placement.threads)
        cfg.dynamic_batching.max_queue_delay_microseconds = placement.delay_us
    if batching == "off":
        cfg.ClearField("dynamic_batching")
    if not cache:
        cfg.ClearField("response_cache")
    return json_format.MessageToJson(cfg, preserving_proto_field_name=True)


def reload_model(http_url: str, model: str, batching: Batching = "on", cache: bool = False,
                 headers: dict[str, str] | None = None, placement: Placement | None = None) -> None:
    """Reload `model` with that config; `headers` carry the admin key of a restricted Triton."""
    client = triton_http.InferenceServerClient(http_url.removeprefix("http://"), network_timeout=300)
    try:
        client.load_model(model, config=model_config(model, batching, cache, placement), headers=headers)
    finally:
        client.close()


def _totals(stats) -> dict[str, float]:
    """Sums over the model's versions of the counters the point needs."""
    out = dict.fromkeys(("inference", "execution", "success", "queue_ns", "compute_ns"), 0.0)
    for m in stats.model_stats:
        s = m.inference_stats
        out["inference"] += m.inference_count
        out["execution"] += m.execution_count
        out["success"] += s.success.count
        out["queue_ns"] += s.queue.ns
        out["compute_ns"] += s.compute_input.ns + s.compute_infer.ns + s.compute_output.ns
    return out


class PrebuiltInfer:
    """The cheapest client Python can be, as perf_analyzer's is: each request's protobuf is built
    once, and a call is one `ModelInfer` on a grpc.aio stub. The load generator shares the two
    cores with Triton, so every microsecond it spends is taken from the server it measures."""

    def __init__(self, grpc_url: str, w: Workload, payloads: list[dict[str, np.ndarray]]):
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        spec = specs.get(w.model)
        self.requests = []
        for feeds in payloads:
            req = service_pb2.ModelInferRequest(model_name=w.model)
            for t in spec.inputs:
                array = np.ascontiguousarray(feeds[t.name], dtype=t.numpy_dtype)
                req.inputs.add(name=t.name, datatype=t.dtype, shape=list(array.shape))
                req.raw_input_contents.append(array.tobytes())
            for name in spec.output_names:
                req.outputs.add(name=name)
            self.requests.append(req)
        self.n_outputs = len(spec.output_names)
        options = [("grpc.max_receive_message_length", 64 * 2**20), ("grpc.max_send_message_length", 64 * 2**20)]
        self.channel = grpc.aio.insecure_channel(grpc_url, options=options)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    async def __call__(self, i: int) -> None:
        response = await self.stub.ModelInfer(self.requests[i % len(self.requests)], timeout=60)
        if len(response.raw_output_contents) != self.n_outputs:
            raise RuntimeError(f"{len(response.raw_output_contents)} outputs, expected {self.n_outputs}")

    async def close(self) -> None:
        await self.channel.close()


async def _settled(stats: AsyncTritonModelClient, model: str, quiet_s: float = 0.2, limit_s: float = 10.0) -> dict:
    """The model's totals once no request is running: a request the previous run cancelled on the
    client still runs on Triton and must not land in the next window (a 300-row recommender call in
    a batching-off window of single rows reads as batching)."""
    totals = _totals(await stats.statistics(model))
    deadline = asyncio.get_running_loop().time() + limit_s
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(quiet_s)
        again = _totals(await stats.statistics(model))
        if again == totals:
            break
        totals = again
    return totals


async def measure_model(
    grpc_url: str, w: Workload, batching: Batching, concurrencies: list[int], seconds: float, warmup_s: float, seed: int = 0
) -> list[TritonPoint]:
    rng = np.random.default_rng(seed)
    infer = PrebuiltInfer(grpc_url, w, [w.request(rng) for _ in range(16)])
    stats = AsyncTritonModelClient(grpc_url, timeout_s=60)
    points = []
    try:
        for c in concurrencies:
            before = await _settled(stats, w.model)
            point = await closed_loop(infer, c, seconds, warmup_s, items=w.rows)
            after = await _settled(stats, w.model)
            d = {k: after[k] - before[k] for k in after}
            n = max(d["success"], 1)
            points.append(
                TritonPoint(
                    **point.model_dump(),
                    workload=w.name,
                    batching=batching,
                    avg_batch=round(d["inference"] / max(d["execution"], 1), 2),
                    queue_ms=round(d["queue_ns"] / n / 1e6, 3),
                    compute_ms=round(d["compute_ns"] / n / 1e6, 3),
                )
            )
    finally:
        await infer.close()
        await stats.close()
    return points
