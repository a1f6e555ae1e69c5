"""Locust scenario: the models themselves, called on Triton over gRPC (no gateway in between).

    locust -f loadtest/triton_locustfile.py --host grpc://127.0.0.1:8001     # or: djserve loadtest triton

Tells the model servers' share of a gateway latency apart from the gateway's. Requests are built
from the model specs (`ModelSpec.random_inputs` + `clients.triton.build_request`), so a contract
change changes the load test with it. Weights: `SCENARIOS["triton"]`, DJSERVE_LOADTEST_WEIGHTS.

gRPC under gevent: Locust has already monkey-patched the standard library when it imports this
file; gRPC's own gevent support must be switched on before the first channel exists, or every
blocking call stalls all simulated users.
"""

from __future__ import annotations

import logging
import time

from grpc.experimental import gevent as grpc_gevent

grpc_gevent.init_gevent()

import numpy as np  # noqa: E402
import tritonclient.grpc as tc  # noqa: E402
from locust import User, between, events  # noqa: E402

from clients.triton import build_request  # noqa: E402
from djserve.specs import get  # noqa: E402
from djserve.specs.features import HOP_LENGTH, MIXING_HOP_FRAMES, SAMPLE_RATE, WINDOW_FRAMES  # noqa: E402
from djserve.specs.sentiment import LENGTH_BUCKETS  # noqa: E402
from loadtest.locust_run import locust_tasks  # noqa: E402
from loadtest.samples import catalogue_size  # noqa: E402

log = logging.getLogger("djserve.loadtest")
POOL = 4
"""Prebuilt requests per model and user: building tensors is not what is measured."""
TIMEOUT_S = 30.0
CHAT_TOKENS = LENGTH_BUCKETS[:3]
"""Chat lines are short: the smallest of sentiment's padding buckets (16, 32, 64 tokens)."""


def grpc_target(host: str) -> str:
    """`grpc://127.0.0.1:8001/` -> `127.0.0.1:8001` (tritonclient.grpc takes host:port)."""
    return host.split("://", 1)[-1].rstrip("/")


def random_request(model: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One realistic request's inputs: a chat line, one user's candidate list, one judge window,
    one second of a live stream's mel frames."""
    spec = get(model)
    if model == "sentiment":
        return spec.random_inputs(1, {"tokens": int(rng.choice(CHAT_TOKENS))}, rng)
    if model == "recommender":
        inputs = spec.random_inputs(catalogue_size(), {}, rng)
        inputs["user_ids"][:] = inputs["user_ids"][0, 0]  # one user, many battles
        return inputs
    if model == "judge":
        return spec.random_inputs(1, {"frames": WINDOW_FRAMES, "steps": WINDOW_FRAMES // MIXING_HOP_FRAMES}, rng)
    if model == "beat_tracker":  # one second of a live stream
        return spec.random_inputs(1, {"frames": SAMPLE_RATE // HOP_LENGTH}, rng)
    raise ValueError(f"no request recipe for model {model!r}")


class GeventSafeClient(tc.InferenceServerClient):
    """Closes once, while gevent runs. tritonclient's `__del__` closes again at interpreter exit,
    and closing a gRPC channel then can wait on gevent forever: Locust hung after its summary in
    about one run out of three (py-spy: `__del__` -> `close` -> grpc `_close`)."""

    _closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            super().close()

    def __del__(self) -> None:
        pass


_CLIENTS: list[GeventSafeClient] = []


class GrpcCallError(Exception):
    """A failed model call, as Locust's failure table shows it."""


class ModelCaller:
    """A gRPC client with prebuilt requests; `call` times one inference (no Locust in here)."""

    in_flight = 0
    max_in_flight = 0
    """Calls awaiting Triton at once, over the process: > 1 proves gevent lets users overlap."""

    def __init__(self, host: str, rng: np.random.Generator, models: list[str]):
        self.client = GeventSafeClient(url=grpc_target(host))
        _CLIENTS.append(self.client)
        self.pool = {m: [build_request(tc, m, random_request(m, rng)) for _ in range(POOL)] for m in models}
        self.rng = rng

    def call(self, model: str) -> tuple[float, int]:
        """(milliseconds, response bytes); raises on any error or a missing output."""
        spec, inputs, outputs = self.pool[model][int(self.rng.integers(POOL))]
        cls = type(self)
        cls.in_flight += 1
        cls.max_in_flight = max(cls.max_in_flight, cls.in_flight)
        start = time.perf_counter()
        try:
            result = self.client.infer(model, inputs, outputs=outputs, client_timeout=TIMEOUT_S)
        finally:
            elapsed_ms = (time.perf_counter() - start) * 1000
            cls.in_flight -= 1
        missing = [n for n in spec.output_names if result.as_numpy(n) is None]
        if missing:
            raise RuntimeError(f"{model}: no output {missing} in the response")
        return elapsed_ms, result.get_response().ByteSize()

    def close(self) -> None:
        self.client.close()


class TritonUser(User):
    wait_time = between(0.05, 0.25)

    def on_start(self) -> None:
        if not self.host:
            raise ValueError("give Triton's gRPC address: --host grpc://127.0.0.1:8001")
        self.caller = ModelCaller(self.host, np.random.default_rng(), ["sentiment", "recommender", "beat_tracker", "judge"])

    def on_stop(self) -> None:
        self.caller.close()

    def _call(self, model: str) -> None:
        """Report one call to Locust as a `grpc` request named by the model."""
        start = time.perf_counter()
        try:
            elapsed_ms, length = self.caller.call(model)
            exception = None
        except Exception as exc:  # every error is a failed request in the stats, never a crash
            # Locust reports repr(exception); tritonclient's says nothing, so carry its message.
            elapsed_ms, length = (time.perf_counter() - start) * 1000, 0
            exception = GrpcCallError(f"{type(exc).__name__}: {exc}")
        self.environment.events.request.fire(
            request_type="grpc", name=model, response_time=elapsed_ms, response_length=length,
            exception=exception, context={},
        )  # fmt: skip

    def sentiment(self) -> None:
        self._call("sentiment")

    def recommender(self) -> None:
        self._call("recommender")

    def beat_tracker(self) -> None:
        self._call("beat_tracker")

    def judge(self) -> None:
        self._call("judge")

    tasks = locust_tasks(
        "triton", {"sentiment": sentiment, "recommender": recommender, "beat_tracker": beat_tracker, "judge": judge}
    )


@events.test_stop.add_listener
def _report_overlap(**_kwargs) -> None:
    log.info("gRPC calls in flight at once, at most: %d", ModelCaller.max_in_flight)


@events.quit.add_listener
def _close_clients(**_kwargs) -> None:
    """Users that never reached on_stop still hold a channel: close it before gevent goes."""
    for client in _CLIENTS:
        client.close()
