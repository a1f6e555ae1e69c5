"""Recommender trainer: HybridRecommendationModel on the synthetic platform's likes.

- Ids go through `user_bucket`/`item_bucket`, exactly as the gateway sends them.
- Only the buckets the training period touches are trained, in compact tables with one extra
  "unseen" row each; the checkpoint scatters them back into the full 50,000 x 128 / 10,000 x 128
  tables and gives every other bucket the unseen row. With Adam (no weight decay) an untouched row
  gets no update, so this is the full model's training, ~5x faster; and because the unseen item row
  is trained (by dropping item ids, `item_dropout`), a battle created after training is scored by
  its audio descriptor and genre instead of by a random untrained embedding.
- Loss: the seed regresses explicit ratings with MSE; the platform only has implicit likes, so
  every like is a positive and `negatives` battles per like, drawn uniformly from the training
  catalogue, are negatives, with binary cross-entropy: it matches the model's sigmoid score (a
  like probability) and, unlike MSE on 0/1 targets, keeps a gradient on confident mistakes.
- Early stopping on validation NDCG@10 (the later slice of days before the held-out period).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from djserve.specs.recommender import NUM_ITEM_BUCKETS, NUM_USER_BUCKETS, SPEC, item_bucket, user_bucket
from exporters.architectures.recommender import HybridRecommendationModel, build_model
from exporters.torch_onnx import load_torch
from training.base import Dataset, EpochLog, Evaluation, MetricRow, Progress, no_progress
from training.datasets.interactions import GENERATOR_VERSION, Split, World, WorldParams, generate, summary
from training.metrics import hit_rate_at_k, ndcg_at_k
from training.onnx_graph import OnnxGraph

FAMILY = "recommender"
FRAMEWORK = "pytorch"
K = 10
CHECKPOINT = "recommender.pt"
RANDOM_SHUFFLES = 5
LIGHT_USER_LIKES = 5
"""Users with fewer training-period likes than this are reported apart (`light_users`)."""


@dataclass(frozen=True)
class Config:
    world: WorldParams
    max_epochs: int = 25
    min_epochs: int = 6
    """No early stop before this: validation dips for a few epochs while the id rows start to count."""
    patience: int = 3
    batch_size: int = 256  # vs 1024: the id rows need steps, not epochs (peak at epoch 9 instead of 17)
    negatives: int = 3
    learning_rate: float = 1e-3
    item_dropout: float = 0.15
    user_dropout: float = 0.05
    max_val_users: int = 400
    id_init_std: float = 0.1
    """Scale of the id rows at the start (the architecture's init is N(0, 1)): 128 unit-variance
    numbers per id drown the audio tower's output, so the model first learns content and
    popularity, then personal taste; at 1.0 it overfits ids (quick: held-out NDCG@10 0.21, not 0.26)."""


PROFILES: dict[str, Config] = {
    "reference": Config(world=WorldParams()),
    "quick": Config(world=WorldParams(seed=11, n_battles=200, n_users=600), max_epochs=10, min_epochs=5, patience=2,
                    max_val_users=200),
}


# ---- data -------------------------------------------------------------------------------------


def dataset(profile: str, seed: int, progress: Progress = no_progress) -> Dataset:
    """The profile's world and its time splits.

    The world's seed is part of the profile, not `seed`: the world is the platform's data, and the
    gateway's catalogue is written from the reference world, so every trained version must see the
    same users and battles. `seed` varies the training (initialisation, negatives, order) only.
    """
    params = PROFILES[profile].world
    progress(f"simulating {params.n_users} users x {params.n_battles} battles over {params.days} days")
    world = generate(params)
    description = {"generator": "interactions", "generator_version": GENERATOR_VERSION, "world_seed": params.seed,
                   "val_start_day": params.val_start, "heldout_start_day": params.heldout_start, **summary(world)}
    return Dataset(name=f"interactions-{profile}", hash=world.hash, splits=world.splits(), description=description)


@dataclass
class _Tables:
    """Which full-table buckets the training period trains, and their compact rows (last = unseen)."""

    user_buckets: np.ndarray  # compact row -> bucket
    item_buckets: np.ndarray
    user_row: np.ndarray  # world user -> compact row
    item_row: np.ndarray  # world battle -> compact row

    @classmethod
    def of(cls, world: World) -> "_Tables":
        train = world.split("train")
        trained_users = np.zeros(len(world.users), bool)
        trained_users[train.likes()[0]] = True
        trained_items = world.battles.created < train.end  # what the training period could show
        ub = np.array([user_bucket(u) for u in world.users.ids])
        ib = np.array([item_bucket(b) for b in world.battles.ids])
        users, items = np.unique(ub[trained_users]), np.unique(ib[trained_items])
        # Hash collisions are real: two ids in one bucket share a row, as they do when served.
        user_row = np.where(trained_users, np.searchsorted(users, ub), len(users))
        item_row = np.where(trained_items, np.searchsorted(items, ib), len(items))
        return cls(users, items, user_row, item_row)


def _compact(full: HybridRecommendationModel, t: _Tables) -> HybridRecommendationModel:
    model = HybridRecommendationModel(num_users=len(t.user_buckets) + 1, num_items=len(t.item_buckets) + 1)
    state = full.state_dict()
    for name, buckets, n in (("user_embedding.weight", t.user_buckets, NUM_USER_BUCKETS),
                             ("item_embedding.weight", t.item_buckets, NUM_ITEM_BUCKETS)):
        unseen = np.setdiff1d(np.arange(n), buckets)[:1]  # any untouched bucket's init for the unseen row
        state[name] = state[name][np.concatenate([buckets, unseen])].clone()
    model.load_state_dict(state)
    return model


def _expand(compact: dict[str, torch.Tensor], t: _Tables) -> dict[str, torch.Tensor]:
    state = dict(compact)
    for name, buckets, n in (("user_embedding.weight", t.user_buckets, NUM_USER_BUCKETS),
                             ("item_embedding.weight", t.item_buckets, NUM_ITEM_BUCKETS)):
        rows = compact[name]
        table = rows[-1].expand(n, -1).clone()
        table[torch.from_numpy(buckets)] = rows[:-1]
        state[name] = table
    return state


# ---- ranking ----------------------------------------------------------------------------------


@dataclass
class _Case:
    user: int
    candidates: np.ndarray  # battles to rank
    relevant: set[int]


def _cases(target: Split, history: list[Split]) -> list[_Case]:
    """Users with a training like and a like in `target` on a battle not watched before it.

    Candidates: the catalogue as of the end of `target`, less what the user watched before it.
    """
    world = target.world
    train_likes = np.bincount(world.split("train").likes()[0], minlength=len(world.users))
    seen: dict[int, set[int]] = {}
    for s in history:
        for u, b in zip(s.user.tolist(), s.battle.tolist()):
            seen.setdefault(u, set()).add(b)
    relevant: dict[int, set[int]] = {}
    for u, b in zip(*(a.tolist() for a in target.likes())):
        if train_likes[u] > 0 and b not in seen.get(u, ()):
            relevant.setdefault(u, set()).add(b)
    existing = np.flatnonzero(world.battles.created < target.end)
    cases = []
    for u in sorted(relevant):
        watched = seen.get(u, set())
        cases.append(_Case(u, np.array([b for b in existing if b not in watched]), relevant[u]))
    return cases


def _ranked(case: _Case, scores: np.ndarray) -> list[int]:
    order = np.argsort(-scores[case.candidates], kind="stable")  # ties: older battle first, as the gateway
    return case.candidates[order].tolist()


def _mean_metrics(cases: list[_Case], scores: Callable[[_Case], np.ndarray]) -> dict[str, float]:
    ndcg, hr = [], []
    for c in cases:
        ranked = _ranked(c, scores(c))
        ndcg.append(ndcg_at_k(ranked, c.relevant, K))
        hr.append(hit_rate_at_k(ranked, c.relevant, K))
    return {f"ndcg_at_{K}": float(np.mean(ndcg)) if ndcg else 0.0, f"hr_at_{K}": float(np.mean(hr)) if hr else 0.0}


@torch.inference_mode()
def _model_scores(model: HybridRecommendationModel, users: np.ndarray, items: np.ndarray, world: World,
                  users_per_chunk: int = 16) -> np.ndarray:
    """[len(users), n_battles] scores: one row per user over the whole catalogue, as the gateway asks."""
    n = len(world.battles)
    audio = torch.from_numpy(world.battles.audio)
    genre = torch.from_numpy(world.battles.genre.astype(np.int64)).reshape(-1, 1)
    item = torch.from_numpy(items.astype(np.int64)).reshape(-1, 1)
    out = []
    for start in range(0, len(users), users_per_chunk):
        chunk = torch.from_numpy(users[start:start + users_per_chunk].astype(np.int64))
        m = len(chunk)
        s = model(chunk.repeat_interleave(n).reshape(-1, 1), item.repeat(m, 1), audio.repeat(m, 1), genre.repeat(m, 1))
        out.append(s.reshape(m, n).numpy())
    return np.concatenate(out) if out else np.zeros((0, n), np.float32)


def _scores_by_user(model: HybridRecommendationModel, cases: list[_Case], user_ids: np.ndarray, item_ids: np.ndarray,
                    world: World) -> dict[int, np.ndarray]:
    """World user -> the model's scores over the catalogue; ids are model rows (buckets or compact rows)."""
    model.eval()
    users = np.array([c.user for c in cases], dtype=np.int64)
    scores = _model_scores(model, user_ids[users], item_ids, world)
    return dict(zip(users.tolist(), scores))


# ---- fit --------------------------------------------------------------------------------------


def fit(data: Dataset, config: Config, seed: int, out_dir: Path, log: EpochLog,
        progress: Progress = no_progress, shuffle_labels: bool = False) -> Path:
    torch.set_num_threads(1)
    train: Split = data.splits["train"]
    world = train.world
    rng = np.random.default_rng(seed)
    tables = _Tables.of(world)
    full = build_model(seed)  # seeds torch: dropout and init follow `seed`
    model = _compact(full, tables)
    with torch.no_grad():
        model.user_embedding.weight.mul_(config.id_init_std)
        model.item_embedding.weight.mul_(config.id_init_std)

    n_battles = len(world.battles)
    pos_user, pos_item = _unique_pairs(*train.likes(), n_battles)
    trainable = np.flatnonzero(world.battles.created < train.end)
    liked = set((pos_user * n_battles + pos_item).tolist())
    audio = torch.from_numpy(world.battles.audio)
    genre = torch.from_numpy(world.battles.genre.astype(np.int64))
    val_cases = _cases(data.splits["val"], [train])
    if len(val_cases) > config.max_val_users:
        val_cases = [val_cases[i] for i in sorted(rng.choice(len(val_cases), config.max_val_users, replace=False))]

    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    best: tuple[float, dict[str, torch.Tensor]] = (-1.0, copy.deepcopy(model.state_dict()))
    stale = 0
    for epoch in range(1, config.max_epochs + 1):
        t0 = time.perf_counter()
        users, items, labels = _epoch_rows(pos_user, pos_item, trainable, liked, n_battles, config.negatives, rng)
        if shuffle_labels:  # control run: labels no longer belong to their (user, battle) pairs
            labels = rng.permutation(labels)
        user_rows = tables.user_row[users]
        item_rows = tables.item_row[items]
        # Id dropout trains the unseen rows: what new users and battles are scored with.
        user_rows = np.where(rng.random(len(users)) < config.user_dropout, len(tables.user_buckets), user_rows)
        item_rows = np.where(rng.random(len(items)) < config.item_dropout, len(tables.item_buckets), item_rows)
        order = rng.permutation(len(users))
        u_t, i_t = torch.from_numpy(user_rows[order]), torch.from_numpy(item_rows[order])
        b_t, y_t = torch.from_numpy(items[order]), torch.from_numpy(labels[order].astype(np.float32))

        model.train()
        total = 0.0
        for s in range(0, len(order), config.batch_size):
            sl = slice(s, s + config.batch_size)
            pred = model(u_t[sl], i_t[sl], audio[b_t[sl]], genre[b_t[sl]]).reshape(-1)
            loss = F.binary_cross_entropy(pred, y_t[sl])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(pred)

        val_scores = _scores_by_user(model, val_cases, tables.user_row, tables.item_row, world)
        val = _mean_metrics(val_cases, lambda c: val_scores[c.user])[f"ndcg_at_{K}"]
        log(epoch, {"train_loss": total / len(order), f"val_ndcg_at_{K}": val, "learning_rate": config.learning_rate})
        seconds = time.perf_counter() - t0
        progress(f"epoch {epoch}: train loss {total / len(order):.4f}, val NDCG@{K} {val:.4f} ({seconds:.1f} s)")
        if val > best[0]:
            best, stale = (val, copy.deepcopy(model.state_dict())), 0
        else:
            stale += 1
            if stale >= config.patience and epoch >= config.min_epochs:
                break

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / CHECKPOINT
    torch.save(_expand(best[1], tables), path)
    return path


def _unique_pairs(users: np.ndarray, items: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    codes = np.unique(users.astype(np.int64) * n_items + items)
    return (codes // n_items).astype(np.int64), (codes % n_items).astype(np.int64)


def _epoch_rows(pos_user: np.ndarray, pos_item: np.ndarray, trainable: np.ndarray, liked: set[int], n_items: int,
                negatives: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every like once, and `negatives` fresh random unliked battles per like."""
    neg_user = np.repeat(pos_user, negatives)
    neg_item = rng.choice(trainable, size=len(neg_user))
    for _ in range(10):  # redraw the few that hit one of the user's likes
        clash = np.fromiter((c in liked for c in (neg_user * n_items + neg_item).tolist()), bool, len(neg_user))
        if not clash.any():
            break
        neg_item[clash] = rng.choice(trainable, size=int(clash.sum()))
    users = np.concatenate([pos_user, neg_user])
    items = np.concatenate([pos_item, neg_item])
    labels = np.concatenate([np.ones(len(pos_user)), np.zeros(len(neg_user))])
    return users, items, labels


# ---- evaluate ---------------------------------------------------------------------------------


class _GraphModel:
    """An exported graph called like the torch model (`_model_scores` passes tensors, reads a tensor)."""

    def __init__(self, graph: OnnxGraph) -> None:
        self.graph = graph

    def eval(self) -> "_GraphModel":
        return self

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.graph(*(t.numpy() for t in tensors)))


EVALUATES_ONNX = True
"""`evaluate` can score an exported graph instead of the checkpoint's model (INT8 acceptance)."""


def evaluate(checkpoint: Path, data: Dataset, progress: Progress = no_progress, onnx_model: Path | None = None) -> Evaluation:
    """Held-out ranking: each training user with held-out likes ranks the whole catalogue, less the
    battles they watched before the held-out period; baselines: training-period like counts, and
    random orders (mean of RANDOM_SHUFFLES seeded ones). `onnx_model`: that exported graph ranks."""
    torch.set_num_threads(1)
    heldout: Split = data.splits["heldout"]
    world = heldout.world
    history = [data.splits["train"], data.splits["val"]]
    model = (_GraphModel(OnnxGraph(onnx_model, SPEC, threads=1)) if onnx_model
             else load_torch(SPEC, build_model, checkpoint, seed=0))  # exactly what `djserve export` loads
    user_ids = np.array([user_bucket(u) for u in world.users.ids])
    item_ids = np.array([item_bucket(b) for b in world.battles.ids])
    n = len(world.battles)
    popularity = np.bincount(data.splits["train"].likes()[1], minlength=n).astype(np.float64)

    train_likes = np.bincount(data.splits["train"].likes()[0], minlength=len(world.users))

    cases = _cases(heldout, history)
    progress(f"ranking the catalogue for {len(cases)} held-out users")
    scores = _scores_by_user(model, cases, user_ids, item_ids, world)
    new = set(np.flatnonzero(world.battles.created >= data.splits["train"].end).tolist())  # scored by content only
    subsets = {
        "heldout": cases,
        "light_users": [c for c in cases if train_likes[c.user] < LIGHT_USER_LIKES],
        "regular_users": [c for c in cases if train_likes[c.user] >= LIGHT_USER_LIKES],
        "new_battles": [replace(c, relevant=c.relevant & new) for c in cases if c.relevant & new],
    }
    rows: list[MetricRow] = []
    extra: dict[str, int] = {}
    for name, cases in subsets.items():
        ours = _mean_metrics(cases, lambda c: scores[c.user])
        pop = _mean_metrics(cases, lambda c: popularity)
        rand = [_mean_metrics(cases, lambda c, r=np.random.default_rng(s): r.random(n)) for s in range(RANDOM_SHUFFLES)]
        for metric in (f"ndcg_at_{K}", f"hr_at_{K}"):
            baselines = {"popularity": pop[metric], "random": float(np.mean([r[metric] for r in rand]))}
            rows.append(MetricRow(name, metric, ours[metric], baselines))
        extra[f"{name}_users"] = len(cases)
    samples = [float(ndcg_at_k(_ranked(c, scores[c.user]), c.relevant, K)) for c in subsets["heldout"]]
    return Evaluation(rows=rows, headline=f"heldout.ndcg_at_{K}", extra=extra, samples=samples)
