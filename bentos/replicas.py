"""The gateway's Triton client over several replicas (DJSERVE_GATEWAY_TRITON_URL="a:8001,b:8001").

Calls go round robin over the replicas. An inference that a replica refused UNAVAILABLE (down,
restarting, or the version not ready there: the request never reached a model) is sent once more
to the next replica, so losing one of two replicas under load fails no request. Anything else
(a model error, a timeout that may have run the model) is not retried. A `dns:///` entry is one
gRPC channel balancing over every address of the name; its retry goes to that channel's next pod.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from bentos.metrics import triton_retries
from djserve.triton.replicas import DNS_PREFIX, split

log = logging.getLogger(__name__)


def unreached(exc: Exception) -> bool:
    """The call failed before any model ran: safe to send to another replica."""
    status = getattr(exc, "status", None)
    return callable(status) and "UNAVAILABLE" in str(status() or "")


class ReplicaPool:
    """The same calls as one `AsyncTritonModelClient` (infer, is_ready, statistics, close)."""

    def __init__(self, clients: Sequence, names: Sequence[str]):
        if not clients or len(clients) != len(names):
            raise ValueError("a replica pool needs one client per replica name")
        self.clients, self.names = list(clients), list(names)
        self._turn = itertools.cycle(range(len(self.clients)))
        self.retry = len(self.clients) > 1 or self.names[0].startswith(DNS_PREFIX)

    @classmethod
    def connect(cls, setting: str, make_client: Callable[[str], object]) -> "ReplicaPool":
        names = split(setting)
        return cls([make_client(n) for n in names], names)

    async def infer(self, model: str, inputs: Mapping[str, np.ndarray], version: int | None = None) -> dict[str, np.ndarray]:
        i = next(self._turn)
        try:
            return await self.clients[i].infer(model, inputs, version=version)
        except Exception as exc:
            if not (self.retry and unreached(exc)):
                raise
            j = (i + 1) % len(self.clients)
            log.warning("Triton %s refused %s v%s (unavailable); retrying once on %s", self.names[i], model, version, self.names[j])
            try:
                out = await self.clients[j].infer(model, inputs, version=version)
            except Exception:
                triton_retries().labels(outcome="error").inc()
                raise
            triton_retries().labels(outcome="ok").inc()
            return out

    async def is_ready(self, model: str | None = None, version: int | None = None) -> bool:
        """Ready if any replica is: the retry sends a call past a replica that is not."""
        async def ask(client) -> bool:
            try:
                return bool(await client.is_ready(model, version))
            except Exception:  # noqa: BLE001 - a replica that cannot answer is not ready
                return False

        return any(await asyncio.gather(*(ask(c) for c in self.clients)))

    async def statistics(self, model: str):
        return await self.clients[0].statistics(model)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
