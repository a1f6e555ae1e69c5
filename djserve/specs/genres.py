"""Genres: the recommender's 12 genre ids and the judge's genre weighting.

Decision (the design documents name 12, 8, 6 or 4 genres): the id space is the recommender's 12 genres,
named in the design documents plus the common neighbours; only four have weight tables in the
design documents (two of them agree on house/techno). A genre without a table, or an unknown
one, is scored with equal weights (DEFAULT_WEIGHTS): a neutral default rather than one design's silent
fallback to house, so no genre is judged by another genre's priorities.
"""

from __future__ import annotations

GENRES: tuple[str, ...] = (
    "house",
    "techno",
    "trance",
    "dubstep",
    "drum_and_bass",
    "hip_hop",
    "hard_techno",
    "tech_house",
    "deep_house",
    "progressive",
    "breakbeat",
    "other",
)

#: Judge component order: the labels of judge.component_scores.
JUDGE_COMPONENTS: tuple[str, ...] = ("technical_skill", "track_selection", "energy_flow", "creativity")

#: Genre -> weights over JUDGE_COMPONENTS (the design documents' tables; rows sum to 1).
GENRE_WEIGHTS: dict[str, tuple[float, float, float, float]] = {
    "house": (0.30, 0.25, 0.25, 0.20),
    "techno": (0.20, 0.30, 0.30, 0.20),
    "trance": (0.25, 0.25, 0.30, 0.20),
    "dubstep": (0.35, 0.20, 0.25, 0.20),
}

DEFAULT_WEIGHTS: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)


def normalize_genre(genre: str) -> str:
    """"Drum & Bass" -> "drum_and_bass": the spelling GENRES and GENRE_WEIGHTS use."""
    return genre.strip().lower().replace(" ", "_").replace("-", "_").replace("&", "and").replace("__", "_")


def genre_id(genre: str) -> int:
    """Recommender genre id; unknown genres map to "other"."""
    key = normalize_genre(genre)
    return GENRES.index(key) if key in GENRES else GENRES.index("other")


def weights_for(genre: str) -> tuple[float, float, float, float]:
    return GENRE_WEIGHTS.get(normalize_genre(genre), DEFAULT_WEIGHTS)
