"""The gateway's way to Triton: routed versions, a timeout on every call, errors mapped to HTTP.

Triton down, slow past the timeout, or a routed version not loaded -> TritonUnavailable (503 with
Retry-After); a pinned version that does not exist -> 404. The gRPC channel reconnects with a short
backoff so the gateway recovers by itself within about a second of Triton coming back.

Concurrent calls for one model version are joined into one Triton call (bentos.batching); each
request is still observed, timed and mirrored on its own. In front of that, rows already answered
(repeated chat messages) come from a per-row cache (bentos.row_cache) and only the others are sent.

A route with a shadow version is mirrored to it (bentos.shadow) once the stable version has answered;
drills can inject delays and failures into one version (GatewaySettings.fault_injection).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable, Mapping, Union

import numpy as np

from bentos.batching import RowBatcher, signature
from bentos.errors import GatewayError, TritonUnavailable
from bentos.metrics import stage
from bentos.monitoring import PredictionMonitor, summarize
from bentos.replicas import ReplicaPool
from bentos.row_cache import RowCache, serves
from bentos.settings import FaultSpec, GatewaySettings
from bentos.shadow import ShadowMirror
from djserve import specs
from djserve.traffic import FAMILIES, PolicyStore, Route, newest_versions, route
from clients.triton import AsyncTritonModelClient

log = logging.getLogger(__name__)

#: Reconnect fast after Triton restarts (gRPC's default backoff grows to two minutes).
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 2**20),
    ("grpc.max_send_message_length", 64 * 2**20),
    # With a `dns:///` target that resolves to every Triton replica (Kubernetes: the headless
    # Service), spread calls over all of them instead of pinning one connection to one pod.
    ("grpc.lb_policy_name", "round_robin"),
]
READINESS_TTL_S = 1.0


Inputs = Mapping[str, np.ndarray]


class ModelBackend:
    def __init__(self, settings: GatewaySettings, client=None):
        self.settings = settings
        self.client = client or ReplicaPool.connect(
            settings.triton_url, lambda url: AsyncTritonModelClient(url, settings.triton_timeout_s, channel_args=CHANNEL_ARGS)
        )
        """The Triton client over the replicas (`infer`, `is_ready`, `close`); tests pass a fake."""
        self.policies = PolicyStore(settings.policy_file, default=lambda: newest_versions(settings.repository))
        self.monitor = PredictionMonitor(settings.drift_baseline_dir)
        """Live windows per family and version: canary gates and drift read them."""
        self.shadow = ShadowMirror(self._infer_shadow, self.monitor, settings.shadow_queue_size, settings.shadow_concurrency)
        self.batcher = RowBatcher(
            self._joined, max_rows=lambda key: specs.get(key[0]).batching.max_batch_size,
            max_in_flight=settings.micro_batch_in_flight, isolate=_model_failure, metric_name=lambda key: key[0],
        ) if settings.micro_batching else None
        """Joins concurrent calls for one model version (bentos.batching); None: one call per request."""
        self.row_cache = RowCache(settings.row_cache_entries) if settings.row_cache_entries else None
        """Answers of single rows (bentos.row_cache), for the models it serves; None: off."""
        self.faults: dict[str, FaultSpec] = dict(settings.fault_injection)
        self.random = random.Random()
        """Draws the injected faults (tests seed it)."""
        self._ready_cache: tuple[float, dict[str, bool], bool] | None = None
        if self.faults:
            log.warning(
                "FAULT INJECTION is on (a drill; DJSERVE_GATEWAY_FAULT_INJECTION): %s",
                "; ".join(f"{f} v{s.version}: error_rate {s.error_rate:g}, delay {s.delay_s:g} s" for f, s in self.faults.items()),
            )
            unknown = sorted(set(self.faults) - set(FAMILIES))
            if unknown:
                log.warning("fault injection names unknown model families %s (known: %s)", unknown, ", ".join(FAMILIES))

    def route(self, family: str, key: str, pinned: int | None = None) -> Route:
        return route(self.policies.current(), family, key, pinned)

    async def infer(
        self, model: str, inputs: Inputs, r: Route, shadow_inputs: Union[Inputs, Callable[[], Inputs], None] = None
    ) -> dict[str, np.ndarray]:
        """One Triton call for a routed request, observed by the monitor; mirrored to `r.shadow`, if
        any, after it answered (`shadow_inputs`: the shadow's own inputs, or a function making them,
        when they differ from the stable version's, e.g. another tokenizer)."""
        start = time.perf_counter()
        try:
            with stage("inference"):
                fault = self.faults.get(model)
                if fault is not None and fault.version == r.version:
                    await self._inject(model, r, fault)
                out = await self._call(model, inputs, r)
        except GatewayError as exc:
            if exc.status >= 500:  # the version failed; a pinned version that does not exist did not
                self.monitor.observe(model, r.version, None, time.perf_counter() - start, ok=False)
            raise
        latency = time.perf_counter() - start
        value = summarize(model, out)
        self.monitor.observe(model, r.version, value, latency, ok=True)
        if r.shadow is not None:
            self.shadow.submit(model, inputs if shadow_inputs is None else shadow_inputs, r.version, r.shadow, out, value, latency)
        return out

    async def _call(self, model: str, inputs: Inputs, r: Route) -> dict[str, np.ndarray]:
        """This request's outputs: rows answered before from the row cache, the others from Triton."""
        spec = specs.get(model)
        if self.row_cache is None or not serves(spec):
            return await self._send(spec, inputs, r)
        return await self.row_cache.answer(spec, r.version, inputs, lambda rows: self._send(spec, rows, r))

    async def _send(self, spec: specs.ModelSpec, inputs: Inputs, r: Route) -> dict[str, np.ndarray]:
        """Outputs from a Triton call of this request's own or joined with concurrent ones."""
        if self.batcher is None or not spec.batching.gateway_joins:
            return await self._infer(spec.name, inputs, r)
        return await self.batcher.submit((spec.name, r.version, r.pinned, signature(inputs)), inputs)

    async def _joined(self, key: tuple, inputs: Inputs) -> dict[str, np.ndarray]:
        model, version, pinned, _ = key
        return await self._infer(model, inputs, Route(model, version, canary=False, pinned=pinned))

    async def _inject(self, model: str, r: Route, fault: FaultSpec) -> None:
        if fault.delay_s > 0:
            await asyncio.sleep(fault.delay_s)
        if fault.error_rate > 0 and self.random.random() < fault.error_rate:
            raise GatewayError(
                "injected_fault", f"{model} v{r.version}: fault injected for a drill (DJSERVE_GATEWAY_FAULT_INJECTION)",
                status=502,
            )

    async def _infer_shadow(self, model: str, inputs: Inputs, version: int) -> dict[str, np.ndarray]:
        """A mirrored call: same timeout and error mapping, no monitor observation, no fault injection."""
        return await self._infer(model, inputs, Route(model, version, canary=False, pinned=False), shadow=True)

    async def _infer(self, model: str, inputs: Inputs, r: Route, shadow: bool = False) -> dict[str, np.ndarray]:
        from tritonclient.utils import InferenceServerException

        try:
            return await asyncio.wait_for(
                self.client.infer(model, inputs, version=r.version), self.settings.triton_timeout_s + 1
            )
        except asyncio.TimeoutError:
            self._ready_cache = None
            raise TritonUnavailable(f"{model} v{r.version} did not answer within {self.settings.triton_timeout_s:g} s") from None
        except InferenceServerException as exc:
            raise self._map_error(model, r, exc, shadow) from None

    def _map_error(self, model: str, r: Route, exc, shadow: bool = False) -> GatewayError:
        status, message = str(exc.status() or ""), exc.message() or str(exc)
        if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status or "CANCELLED" in status:
            self._ready_cache = None
            return TritonUnavailable(f"Triton is unavailable ({status.removeprefix('StatusCode.')}): {message}")
        if "unknown model" in message.lower() or "is not found" in message or "not ready" in message.lower():
            if r.pinned:
                return GatewayError(
                    "unknown_model_version", f"{model} version {r.version} is not loaded", field="X-Model-Version", status=404
                )
            self._ready_cache = None
            return TritonUnavailable(f"{model} version {r.version} (traffic policy) is not loaded: {message}")
        if not shadow:  # shadow failures are counted and warned about (rate limited) by the mirror
            log.error("%s v%s failed: %s %s", model, r.version, status, message)
        return GatewayError("inference_failed", f"{model} v{r.version} failed: {message}", status=502)

    async def readiness(self) -> tuple[bool, dict[str, bool]]:
        """(Triton ready, family -> every version its policy routes to is ready), cached briefly."""
        now = time.monotonic()
        if self._ready_cache and now - self._ready_cache[0] < READINESS_TTL_S:
            return self._ready_cache[2], self._ready_cache[1]
        try:
            server = await self.client.is_ready()
            policy = self.policies.current()
            checks = {
                family: [fp.stable] + ([fp.canary] if fp.canary else []) for family, fp in policy.families.items()
            }
            results = await asyncio.gather(
                *(self.client.is_ready(f, v) for f, versions in checks.items() for v in versions)
            )
            it = iter(results)
            families = {f: all(next(it) for _ in versions) for f, versions in checks.items()}
        except Exception:  # noqa: BLE001 - any failure to ask means not ready
            server, families = False, {f: False for f in FAMILIES}
        self._ready_cache = (now, families, server)
        return server, families

    async def close(self) -> None:
        await self.shadow.close()
        await self.client.close()


def _model_failure(exc: BaseException) -> bool:
    """A joined call the model itself failed (502): retry its callers one by one, so that one bad
    input fails only its own request. Triton down (503) or a missing version (404) fail them all."""
    return isinstance(exc, GatewayError) and exc.status == 502
