"""The recommender trainer on the quick profile: it learns, its control does not, it reproduces, it exports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from djserve.specs.recommender import NUM_ITEM_BUCKETS, NUM_USER_BUCKETS, SPEC, item_bucket, user_bucket
from exporters.architectures.recommender import build_model
from exporters.torch_onnx import load_torch
from training.datasets.interactions import TEST_USER
from training.trainers import recommender as R

HEADLINE = "heldout.ndcg_at_10"


@pytest.fixture(scope="module")
def data():
    return R.dataset("quick", 0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    logs: list[tuple[int, dict[str, float]]] = []
    ckpt = R.fit(data, R.PROFILES["quick"], 0, tmp_path_factory.mktemp("fit"), lambda e, m: logs.append((e, dict(m))))
    return ckpt, R.evaluate(ckpt, data), logs


def test_dataset_is_the_profile_world(data):
    assert set(data.splits) == {"train", "val", "heldout"} and len(data.hash) == 64
    assert data.hash == R.dataset("quick", 1).hash  # the world is the profile's; the seed varies training
    assert data.description["users"] == R.PROFILES["quick"].world.n_users


def test_quick_profile_beats_popularity_and_random(trained):
    _, ev, _ = trained
    m = ev.metrics
    assert ev.headline == HEADLINE
    assert m[HEADLINE] > 1.2 * m[f"{HEADLINE}.baseline_popularity"]
    assert m[HEADLINE] > 3 * m[f"{HEADLINE}.baseline_random"]
    assert m["heldout.hr_at_10"] > m["heldout.hr_at_10.baseline_popularity"]
    # Battles created after training have no like counts: only the audio and genre can rank them.
    assert m["new_battles.ndcg_at_10"] > 2 * m["new_battles.ndcg_at_10.baseline_random"]


def test_every_epoch_is_logged(trained):
    _, _, logs = trained
    assert [e for e, _ in logs] == list(range(1, len(logs) + 1)) and len(logs) >= R.PROFILES["quick"].min_epochs
    assert all({"train_loss", "val_ndcg_at_10", "learning_rate"} <= set(m) for _, m in logs)
    assert logs[-1][1]["train_loss"] < logs[0][1]["train_loss"]


def test_shuffled_labels_score_near_random(data, trained, tmp_path):
    _, real, _ = trained
    ckpt = R.fit(data, R.PROFILES["quick"], 0, tmp_path, lambda e, m: None, shuffle_labels=True)
    m = R.evaluate(ckpt, data).metrics
    assert m[HEADLINE] < 0.5 * real.metrics[HEADLINE]
    assert m[HEADLINE] < m[f"{HEADLINE}.baseline_popularity"]
    assert m[HEADLINE] < 2 * m[f"{HEADLINE}.baseline_random"]


def test_same_seed_same_weights(data, tmp_path):
    short = dataclasses.replace(R.PROFILES["quick"], max_epochs=1)
    a, b, c = (torch.load(R.fit(data, short, seed, tmp_path / f"{i}", lambda e, m: None), weights_only=True)
               for i, seed in enumerate((5, 5, 6)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_exports_and_scores_like_the_gateway(trained, data):
    ckpt, _, _ = trained
    model = load_torch(SPEC, build_model, ckpt, seed=0)  # what `djserve export --checkpoint` does
    users = model.user_embedding.weight.detach()
    items = model.item_embedding.weight.detach()
    assert users.shape[0] == NUM_USER_BUCKETS and items.shape[0] == NUM_ITEM_BUCKETS
    # Ids are hashed as the gateway hashes them: a training user's bucket is trained, a stranger's
    # bucket holds the shared unseen row, as does a battle id that did not exist in training.
    unseen_user = users[user_bucket("nobody-ever")]
    assert not torch.equal(users[user_bucket(TEST_USER)], unseen_user)
    assert torch.equal(items[item_bucket("battle-from-the-future")], items[item_bucket("another-new-battle")])

    world = data.splits["train"].world
    n = len(world.battles)
    with torch.inference_mode():
        scores = model(
            torch.full((n, 1), user_bucket(TEST_USER), dtype=torch.int64),
            torch.tensor([[item_bucket(b)] for b in world.battles.ids]),
            torch.from_numpy(world.battles.audio),
            torch.from_numpy(world.battles.genre.astype(np.int64)).reshape(-1, 1),
        )
    assert scores.shape == (n, 1) and float(scores.min()) >= 0 and float(scores.max()) <= 1
    assert float(scores.std()) > 0.01


def test_held_out_targets_exclude_what_the_user_already_watched(data):
    splits = data.splits
    cases = R._cases(splits["heldout"], [splits["train"], splits["val"]])
    assert cases
    seen = {}
    for s in (splits["train"], splits["val"]):
        for u, b in zip(s.user.tolist(), s.battle.tolist()):
            seen.setdefault(u, set()).add(b)
    for c in cases:
        assert c.relevant <= set(c.candidates.tolist())
        assert not (set(c.candidates.tolist()) & seen.get(c.user, set()))


def test_an_exported_graph_is_scored_like_its_checkpoint_and_int8_is_scored_too(trained, data, tmp_path):
    """What `djserve export recommender --quantize int8` relies on."""
    from tests.training.graph_scoring import check_exported_graphs_are_scored

    ckpt, ev = trained[0], trained[1]
    check_exported_graphs_are_scored("recommender", R.evaluate, ckpt, data, ev.metrics, HEADLINE, tmp_path)
