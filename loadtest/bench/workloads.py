"""What one request to each benchmarked model looks like.

judge: one full analysis window; sentiment: one chat message in the 32-token bucket, or eight (the
chat batch endpoint); recommender: one user's whole catalogue (what the gateway sends: every battle
in one request), or one user-battle pair (the design documents' `predict(user_id, item_id)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from djserve import specs
from djserve.specs.features import WINDOW_FRAMES, MIXING_HOP_FRAMES
from loadtest.samples import catalogue_size


@dataclass(frozen=True)
class Workload:
    name: str
    model: str
    rows: int
    """Rows (batch entries) per request."""
    axes: Mapping[str, int]
    what: str

    def request(self, rng: np.random.Generator, rows: int | None = None) -> dict[str, np.ndarray]:
        return specs.get(self.model).random_inputs(rows or self.rows, self.axes, rng)

    @property
    def max_batch(self) -> int:
        return specs.get(self.model).batching.max_batch_size


_ALL = (
    Workload("judge", "judge", 1, {"frames": WINDOW_FRAMES, "steps": WINDOW_FRAMES // MIXING_HOP_FRAMES}, "one 1,024-frame window (23.8 s)"),
    Workload("sentiment", "sentiment", 1, {"tokens": 32}, "one chat message, 32-token bucket"),
    Workload("sentiment_x8", "sentiment", 8, {"tokens": 32}, "eight chat messages (the batch endpoint)"),
    Workload("recommender", "recommender", catalogue_size(), {}, "one user x the whole catalogue"),
    Workload("recommender_pair", "recommender", 1, {}, "one user-battle pair"),
)
WORKLOADS: dict[str, Workload] = {w.name: w for w in _ALL}
