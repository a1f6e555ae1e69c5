"""The battle catalogue and the users with history, kept as data files in `bentos/data/`.

`battles.json`: every recommendable battle with its genre, popularity and the 512-dim audio
descriptor the recommender reads. `users.json`: users the platform has history for; anyone else
is a cold start (ranked by popularity, no model call). `python -m bentos.catalogue` regenerates
both files deterministically (seed 7): they stand in for the platform's database export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from djserve.specs.genres import GENRES, genre_id
from djserve.specs.recommender import AUDIO_EMBEDDING_DIM


@dataclass(frozen=True)
class Battle:
    battle_id: str
    title: str
    genre: str
    popularity: float


@dataclass
class Catalogue:
    battles: list[Battle]
    audio_features: np.ndarray  # float32 [N, 512]
    genre_ids: np.ndarray  # int64 [N, 1]
    known_users: set[str]

    @classmethod
    def load(cls, battles_file: Path, users_file: Path) -> "Catalogue":
        rows = json.loads(battles_file.read_text())
        users = json.loads(users_file.read_text())
        battles = [Battle(r["battleId"], r["title"], r["genre"], float(r["popularity"])) for r in rows]
        features = np.asarray([r["audioFeatures"] for r in rows], dtype=np.float32)
        if features.shape != (len(rows), AUDIO_EMBEDDING_DIM):
            raise ValueError(f"{battles_file}: audioFeatures must be {AUDIO_EMBEDDING_DIM} floats per battle")
        genre_ids = np.asarray([[genre_id(b.genre)] for b in battles], dtype=np.int64)
        return cls(battles, features, genre_ids, {u["userId"] for u in users})

    def by_popularity(self) -> list[int]:
        return sorted(range(len(self.battles)), key=lambda i: (-self.battles[i].popularity, self.battles[i].battle_id))


def generate(target: Path, n_battles: int = 150, n_users: int = 40, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    centroids = rng.uniform(-0.6, 0.6, size=(len(GENRES), AUDIO_EMBEDDING_DIM))
    battles = []
    for i in range(n_battles):
        g = int(rng.integers(len(GENRES)))
        features = np.clip(centroids[g] + rng.normal(0, 0.15, AUDIO_EMBEDDING_DIM), -1, 1)
        battles.append({
            "battleId": f"battle-{i + 1:04d}",
            "title": f"{GENRES[g].replace('_', ' ').title()} Battle #{i + 1}",
            "genre": GENRES[g],
            "popularity": round(float(rng.beta(2, 5)), 4),
            "audioFeatures": [round(float(x), 3) for x in features],
        })
    users = [{"userId": "test-user-123"}] + [{"userId": f"user-{i:04d}"} for i in range(1, n_users)]
    target.mkdir(parents=True, exist_ok=True)
    (target / "battles.json").write_text(json.dumps(battles, separators=(",", ":")) + "\n")
    (target / "users.json").write_text(json.dumps(users, indent=1) + "\n")


if __name__ == "__main__":
    generate(Path(__file__).parent / "data")
