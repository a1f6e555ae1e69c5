"""A synthetic DJ-battle platform: battles, users with tastes, and 90 days of watching and liking.

The recommender's training data and the gateway's catalogue both come from this one seeded world,
so a trained model's user and battle ids are the ids the gateway serves.

- Battles: a genre (from GENRES, with a genre-typical tempo and energy), a latent quality, an
  audible style, a hidden style (who battles, the crowd: nothing the audio shows), a creation day
  (a backlog before day 0, then new ones every day) and a 512-d audio descriptor: a fixed random
  nonlinear function of the audible attributes plus noise, so a content model can score battles it
  never saw, but cannot read the latent attributes back exactly.
- Users: tastes drawn around a few overlapping taste communities (genre preferences, preferred
  energy and tolerance, faster/slower tempo within a genre, style, sensitivity to quality), an
  activity level (lognormal: many light users, a few heavy ones) and a join day.
- Days: an active user visits, the feed shows a few battles (biased towards quality, recency,
  likes so far and the user's genres), the user watches some (thumbnail: genre and quality) and
  likes those that fit their whole taste, with noise.
- Split by time: train [0, val_start), val [val_start, heldout_start), heldout [heldout_start, days).

`python -m training.datasets.interactions` regenerates `bentos/data/battles.json` and `users.json`
from the reference world (popularity = normalised training-period likes; users = those with a
training-period like).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from djserve.catalogue import FEATURE_DECIMALS, Battle, Catalogue
from djserve.settings import PROJECT_ROOT
from djserve.specs.genres import GENRES
from djserve.specs.recommender import AUDIO_EMBEDDING_DIM

GENERATOR_VERSION = 1
DAY0 = date(2025, 1, 6)
"""Calendar date of day 0 (the catalogue's `createdAt`)."""
TEST_USER = "test-user-123"
"""User 0: the id the README, examples and end-to-end tests ask for; a regular user of the world."""

# genre -> (bpm low, bpm high, mean energy, share of the catalogue)
GENRE_PROFILE: dict[str, tuple[float, float, float, float]] = {
    "house": (120, 128, 0.60, 0.14),
    "techno": (126, 138, 0.70, 0.14),
    "trance": (132, 140, 0.70, 0.07),
    "dubstep": (138, 142, 0.80, 0.07),
    "drum_and_bass": (168, 178, 0.85, 0.09),
    "hip_hop": (82, 100, 0.55, 0.11),
    "hard_techno": (145, 160, 0.90, 0.07),
    "tech_house": (123, 128, 0.65, 0.09),
    "deep_house": (116, 124, 0.40, 0.07),
    "progressive": (122, 130, 0.55, 0.05),
    "breakbeat": (125, 140, 0.70, 0.05),
    "other": (90, 150, 0.50, 0.05),
}
TITLE_WORDS = ("Battle", "Showdown", "Clash", "Face-Off", "Throwdown", "Duel", "Cypher", "Takeover")


@dataclass(frozen=True)
class WorldParams:
    seed: int = 7
    n_battles: int = 300  # the gateway scores the whole catalogue in one request: keep <= 512
    n_users: int = 1200
    days: int = 90
    val_start: float = 62.0
    heldout_start: float = 76.0
    backlog_days: int = 120
    style_dims: int = 6
    hidden_dims: int = 4
    communities: int = 6
    new_user_share: float = 0.3
    audio_noise: float = 0.35
    feed_size: int = 6
    feed_quality: float = 0.6
    feed_recency: float = 1.5
    feed_social: float = 0.3
    feed_taste: float = 1.2


@dataclass
class Battles:
    ids: list[str]
    titles: list[str]
    genre: np.ndarray  # int [N] into GENRES
    bpm: np.ndarray
    energy: np.ndarray  # [0, 1]
    quality: np.ndarray  # latent, N(0, 1)
    style: np.ndarray  # [N, style_dims], audible
    hidden: np.ndarray  # [N, hidden_dims], not in the audio
    created: np.ndarray  # day (negative: the backlog)
    audio: np.ndarray  # float32 [N, 512], rounded as the catalogue file stores it

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Users:
    ids: list[str]
    genre_pref: np.ndarray  # [U, 12], rows sum to 1
    tempo_pref: np.ndarray  # [-1, 1]: slower or faster than the genre's middle
    energy_pref: np.ndarray
    energy_tolerance: np.ndarray
    style: np.ndarray
    hidden: np.ndarray
    quality_taste: np.ndarray
    activity: np.ndarray  # chance of a visit on a given day
    joined: np.ndarray  # day

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Split:
    """One time slice of the watches (every row a watch; `liked` says which were liked)."""

    name: str
    start: float
    end: float
    user: np.ndarray  # int32 into world.users
    battle: np.ndarray  # int32 into world.battles
    day: np.ndarray
    liked: np.ndarray  # bool
    world: "World" = dataclasses.field(repr=False)

    def __len__(self) -> int:
        return len(self.user)

    def likes(self) -> tuple[np.ndarray, np.ndarray]:
        return self.user[self.liked], self.battle[self.liked]


@dataclass
class World:
    params: WorldParams
    battles: Battles
    users: Users
    user: np.ndarray  # all watches, by time
    battle: np.ndarray
    day: np.ndarray
    liked: np.ndarray
    hash: str = ""

    def split(self, name: str) -> Split:
        p = self.params
        bounds = {"train": (0.0, p.val_start), "val": (p.val_start, p.heldout_start), "heldout": (p.heldout_start, p.days)}
        start, end = (float(x) for x in bounds[name])
        m = (self.day >= start) & (self.day < end)
        return Split(name, start, end, self.user[m], self.battle[m], self.day[m], self.liked[m], self)

    def splits(self) -> dict[str, Split]:
        return {name: self.split(name) for name in ("train", "val", "heldout")}


def _affinity(b: Battles, u: Users, users: np.ndarray) -> np.ndarray:
    """[len(users), N] how much each user enjoys each battle once watched (before noise)."""
    lo, hi = (np.array([GENRE_PROFILE[g][i] for g in GENRES]) for i in (0, 1))
    tempo_z = (b.bpm - (lo + hi)[b.genre] / 2) / ((hi - lo)[b.genre] / 2)
    genre = np.log(len(GENRES) * u.genre_pref[users][:, b.genre] + 0.1)
    energy = -((b.energy[None, :] - u.energy_pref[users, None]) ** 2) / (2 * u.energy_tolerance[users, None] ** 2)
    return (
        1.0 * genre
        + 0.4 * np.clip(energy, -4, 0)
        + 0.5 * u.tempo_pref[users, None] * tempo_z[None, :]
        + 0.8 * u.style[users] @ b.style.T / np.sqrt(b.style.shape[1])
        + 0.8 * u.hidden[users] @ b.hidden.T / np.sqrt(b.hidden.shape[1])
        + u.quality_taste[users, None] * b.quality[None, :]
    )


def _battles(p: WorldParams, rng: np.random.Generator) -> Battles:
    n = p.n_battles
    share = np.array([GENRE_PROFILE[g][3] for g in GENRES])
    genre = rng.choice(len(GENRES), size=n, p=share / share.sum())
    lo, hi, e_mean = (np.array([GENRE_PROFILE[g][i] for g in GENRES]) for i in (0, 1, 2))
    bpm = np.round(rng.uniform(lo[genre], hi[genre]), 1)
    energy = np.clip(e_mean[genre] + rng.normal(0, 0.12, n), 0, 1)
    quality = rng.normal(0, 1, n)
    style = rng.normal(0, 1, (n, p.style_dims))
    hidden = rng.normal(0, 1, (n, p.hidden_dims))
    created = np.sort(rng.uniform(-p.backlog_days, p.days, n))

    # The "audio analyser": one fixed random two-layer map of what is audible, plus recording noise.
    audible = np.column_stack([
        np.eye(len(GENRES))[genre] * 1.5,
        (bpm - 128) / 25,
        energy * 2 - 1,
        style,
        0.5 * quality,  # quality is only partly audible
    ])
    w1 = rng.normal(0, 1 / np.sqrt(audible.shape[1]), (audible.shape[1], 64))
    w2 = rng.normal(0, 1 / np.sqrt(64), (64, AUDIO_EMBEDDING_DIM))
    audio = np.tanh(np.tanh(audible @ w1) @ w2 * 1.5 + rng.normal(0, p.audio_noise, (n, AUDIO_EMBEDDING_DIM)))
    audio = np.round(audio, FEATURE_DECIMALS).astype(np.float32)

    counters: dict[int, int] = {}
    titles = []
    for g in genre:
        counters[g] = counters.get(g, 0) + 1
        word = TITLE_WORDS[int(rng.integers(len(TITLE_WORDS)))]
        titles.append(f"{GENRES[g].replace('_', ' ').title()} {word} #{counters[g]}")
    ids = [f"battle-{i + 1:04d}" for i in range(n)]  # numbered in creation order, like a database
    return Battles(ids, titles, genre, bpm, energy, quality, style, hidden, created, audio)


def _users(p: WorldParams, rng: np.random.Generator) -> Users:
    n, k = p.n_users, p.communities
    # Communities overlap: each likes a few genres, and every user mixes their community with the rest.
    community_genres = rng.dirichlet(np.full(len(GENRES), 0.4), size=k)
    community_energy = rng.uniform(0.35, 0.85, k)
    c = rng.integers(k, size=n)
    genre_pref = rng.dirichlet(np.full(len(GENRES), 0.3), size=n)
    genre_pref = 0.6 * community_genres[c] + 0.4 * genre_pref
    energy_pref = np.clip(community_energy[c] + rng.normal(0, 0.12, n), 0.05, 0.95)
    energy_tolerance = rng.uniform(0.12, 0.35, n)
    tempo_pref = rng.uniform(-1, 1, n)
    style = rng.normal(0, 1, (n, p.style_dims))
    hidden = rng.normal(0, 1, (n, p.hidden_dims))
    quality_taste = rng.uniform(0.2, 0.9, n)
    activity = np.clip(rng.lognormal(np.log(0.1), 0.9, n), 0.01, 0.5)
    joined = np.where(rng.random(n) < p.new_user_share, rng.uniform(0, p.days, n), -1.0)
    activity[0], joined[0] = 0.25, -1.0  # TEST_USER: a regular who has been around since before day 0
    ids = [TEST_USER] + [f"user-{i:04d}" for i in range(1, n)]
    return Users(
        ids, genre_pref, tempo_pref, energy_pref, energy_tolerance, style, hidden, quality_taste, activity, joined
    )


def _simulate(p: WorldParams, b: Battles, u: Users, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    affinity = _affinity(b, u, np.arange(len(u)))
    thumbnail = np.log(len(GENRES) * u.genre_pref[:, b.genre] + 0.1) + 0.5 * b.quality[None, :]
    watched = np.zeros((len(u), len(b)), bool)
    likes_so_far = np.zeros(len(b))
    rows: list[tuple[np.ndarray, ...]] = []
    for d in range(p.days):
        visitors = np.flatnonzero((u.joined <= d) & (rng.random(len(u)) < u.activity))
        age = d - b.created
        # The feed: good, new and already-liked battles, nudged towards the user's genres.
        feed = (
            p.feed_quality * b.quality
            + p.feed_recency * np.exp(-np.clip(age, 0, None) / 10)
            + p.feed_social * np.log1p(likes_so_far)
        )
        logits = feed[None, :] + p.feed_taste * np.log(u.genre_pref[visitors][:, b.genre] + 0.02)
        logits[(age < 0)[None, :] | watched[visitors]] = -np.inf
        gumbel = logits + rng.gumbel(size=logits.shape)
        shown = np.argsort(-gumbel, axis=1)[:, : p.feed_size]
        vis = np.repeat(visitors, p.feed_size)
        bat = shown.ravel()
        ok = np.isfinite(logits[np.repeat(np.arange(len(visitors)), p.feed_size), bat])
        vis, bat = vis[ok], bat[ok]
        watch = rng.random(len(vis)) < _sigmoid(-0.6 + 0.6 * thumbnail[vis, bat])
        vis, bat = vis[watch], bat[watch]
        like = rng.random(len(vis)) < _sigmoid(-0.8 + affinity[vis, bat] + rng.normal(0, 0.7, len(vis)))
        watched[vis, bat] = True
        np.add.at(likes_so_far, bat[like], 1)
        rows.append((vis, bat, d + rng.random(len(vis)), like))
    user, battle, day, liked = (np.concatenate(c) for c in zip(*rows))
    order = np.argsort(day, kind="stable")
    return user[order].astype(np.int32), battle[order].astype(np.int32), day[order], liked[order]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def generate(params: WorldParams = WorldParams()) -> World:
    """The world of `params` (deterministic: same params, same bytes, same hash)."""
    rng = np.random.default_rng(params.seed)
    battles = _battles(params, rng)
    users = _users(params, rng)
    user, battle, day, liked = _simulate(params, battles, users, rng)
    world = World(params, battles, users, user, battle, day, liked)
    world.hash = content_hash(world)
    return world


def content_hash(world: World) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"version": GENERATOR_VERSION, **dataclasses.asdict(world.params)}, sort_keys=True).encode())
    h.update(json.dumps([world.battles.ids, world.battles.titles, world.users.ids]).encode())
    for part in (world.battles, world.users):
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            if isinstance(value, np.ndarray):
                h.update(np.ascontiguousarray(value).tobytes())
    for a in (world.user, world.battle, world.day, world.liked):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def popularity(world: World) -> np.ndarray:
    """Training-period likes per battle, divided by the most liked battle's (0..1)."""
    _, battle = world.split("train").likes()
    counts = np.bincount(battle, minlength=len(world.battles)).astype(np.float64)
    return counts / max(counts.max(), 1.0)


def catalogue(world: World) -> Catalogue:
    """What the gateway serves: every battle, and the users with a training-period like."""
    b = world.battles
    pop = popularity(world)
    battles = [
        Battle(
            b.ids[i], b.titles[i], GENRES[b.genre[i]], round(float(pop[i]), 4),
            bpm=float(b.bpm[i]), energy=round(float(b.energy[i]), 3),
            created_at=(DAY0 + timedelta(days=int(np.floor(b.created[i])))).isoformat(),
        )
        for i in range(len(b))
    ]
    users, _ = world.split("train").likes()
    return Catalogue.build(battles, b.audio, (world.users.ids[i] for i in np.unique(users)))


def write_gateway_files(world: World, directory: Path = PROJECT_ROOT / "bentos" / "data") -> Catalogue:
    cat = catalogue(world)
    cat.write(directory / "battles.json", directory / "users.json")
    return cat


def summary(world: World) -> dict[str, float | int]:
    out: dict[str, float | int] = {"battles": len(world.battles), "users": len(world.users)}
    for name, s in world.splits().items():
        out[f"{name}_watches"] = len(s)
        out[f"{name}_likes"] = int(s.liked.sum())
        out[f"{name}_users"] = int(len(np.unique(s.user[s.liked])))
    return out


if __name__ == "__main__":
    w = generate()
    cat = write_gateway_files(w)
    print(f"world {w.hash[:12]}: {summary(w)}")
    print(f"wrote {len(cat.battles)} battles and {len(cat.known_users)} users to bentos/data/")
