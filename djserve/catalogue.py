"""The battle catalogue's file format: the gateway reads it, the training world writes it.

`battles.json`: a list of every recommendable battle,

    {"battleId", "title", "genre", "popularity" (0..1), "audioFeatures" (512 floats in [-1, 1]),
     "bpm", "energy" (0..1), "createdAt" (ISO date)}     # the last three optional

`users.json`: a list of `{"userId"}`, the users the platform has history for; anyone else is a
cold start (ranked by popularity, no model call). Audio features are written with 3 decimals:
what a trainer reads from its world is exactly what the gateway later loads from the file.

Ground floor: numpy and the specs only, so both sides depend on it and not on each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from djserve.specs.genres import genre_id
from djserve.specs.recommender import AUDIO_EMBEDDING_DIM

FEATURE_DECIMALS = 3


@dataclass(frozen=True)
class Battle:
    battle_id: str
    title: str
    genre: str
    popularity: float
    bpm: float | None = None
    energy: float | None = None
    created_at: str | None = None


@dataclass
class Catalogue:
    battles: list[Battle]
    audio_features: np.ndarray  # float32 [N, 512]
    genre_ids: np.ndarray  # int64 [N, 1]
    known_users: set[str]

    @classmethod
    def build(cls, battles: Sequence[Battle], audio_features: np.ndarray, known_users: Iterable[str]) -> "Catalogue":
        features = np.asarray(audio_features, dtype=np.float32)
        if features.shape != (len(battles), AUDIO_EMBEDDING_DIM):
            raise ValueError(f"audioFeatures must be {AUDIO_EMBEDDING_DIM} floats per battle, got {features.shape}")
        genre_ids = np.asarray([[genre_id(b.genre)] for b in battles], dtype=np.int64).reshape(-1, 1)
        return cls(list(battles), features, genre_ids, set(known_users))

    @classmethod
    def load(cls, battles_file: Path, users_file: Path) -> "Catalogue":
        rows = json.loads(battles_file.read_text())
        users = json.loads(users_file.read_text())
        battles = [
            Battle(
                r["battleId"], r["title"], r["genre"], float(r["popularity"]),
                r.get("bpm"), r.get("energy"), r.get("createdAt"),
            )
            for r in rows
        ]
        features = np.asarray([r["audioFeatures"] for r in rows], dtype=np.float32)
        try:
            return cls.build(battles, features, (u["userId"] for u in users))
        except ValueError as exc:
            raise ValueError(f"{battles_file}: {exc}") from None

    def write(self, battles_file: Path, users_file: Path) -> None:
        """Write both files (users sorted, so a regenerated catalogue diffs cleanly)."""
        battles_file.parent.mkdir(parents=True, exist_ok=True)
        users_file.parent.mkdir(parents=True, exist_ok=True)
        rows = [_row(b, f) for b, f in zip(self.battles, self.audio_features)]
        battles_file.write_text(json.dumps(rows, separators=(",", ":")) + "\n")
        users_file.write_text(json.dumps([{"userId": u} for u in sorted(self.known_users)], indent=1) + "\n")

    def by_popularity(self) -> list[int]:
        return sorted(range(len(self.battles)), key=lambda i: (-self.battles[i].popularity, self.battles[i].battle_id))


def _row(b: Battle, features: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {"battleId": b.battle_id, "title": b.title, "genre": b.genre}
    row["popularity"] = round(b.popularity, 4)
    optional = {"bpm": b.bpm, "energy": b.energy, "createdAt": b.created_at}
    row.update({k: v for k, v in optional.items() if v is not None})
    row["audioFeatures"] = [round(float(x), FEATURE_DECIMALS) for x in features]
    return row
