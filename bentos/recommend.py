"""Battle recommendations: the recommender scores the whole catalogue for a known user.

Cold start (a user the platform has no history for): the catalogue's most popular battles,
`coldStart: true`, no model call: the model's user embedding would be an untrained bucket.
"""

from __future__ import annotations

import numpy as np

from bentos.backend import ModelBackend
from bentos.metrics import stage, track
from djserve.catalogue import Catalogue
from djserve.schemas import RecommendedBattle, Recommendations
from djserve.specs.recommender import item_bucket, user_bucket


async def recommend(
    backend: ModelBackend, catalogue: Catalogue, user_id: str, limit: int, pinned: int | None = None
) -> Recommendations:
    if user_id not in catalogue.known_users:
        with track("recommendations", None):
            top = catalogue.by_popularity()[:limit]
            picks = [_battle(catalogue, i, catalogue.battles[i].popularity) for i in top]
        return Recommendations(user_id=user_id, cold_start=True, recommendations=picks, model_version=None)

    r = backend.route("recommender", user_id, pinned)
    n = len(catalogue.battles)
    with track("recommendations", r.version):
        with stage("preprocess"):
            inputs = {
                "user_ids": np.full((n, 1), user_bucket(user_id), dtype=np.int64),
                "item_ids": np.array([[item_bucket(b.battle_id)] for b in catalogue.battles], dtype=np.int64),
                "audio_features": catalogue.audio_features,
                "genre_ids": catalogue.genre_ids,
            }
        out = await backend.infer("recommender", inputs, r)
        with stage("postprocess"):
            scores = out["score"].reshape(-1)
            order = sorted(range(n), key=lambda i: (-scores[i], catalogue.battles[i].battle_id))[:limit]
            picks = [_battle(catalogue, i, float(scores[i])) for i in order]
    return Recommendations(user_id=user_id, cold_start=False, recommendations=picks, model_version=r.version)


def _battle(catalogue: Catalogue, i: int, score: float) -> RecommendedBattle:
    b = catalogue.battles[i]
    return RecommendedBattle(battle_id=b.battle_id, title=b.title, genre=b.genre, score=round(score, 6))
