"""The synthetic platform: determinism, the time split, and the catalogue the gateway serves."""

from __future__ import annotations

import numpy as np
import pytest

from djserve.catalogue import Catalogue
from djserve.settings import PROJECT_ROOT
from djserve.specs.genres import GENRES
from training.datasets.interactions import TEST_USER, WorldParams, catalogue, generate, popularity, write_gateway_files

SMALL = WorldParams(seed=3, n_battles=120, n_users=300)


@pytest.fixture(scope="module")
def world():
    return generate(SMALL)


def test_same_params_same_world_and_hash(world):
    again = generate(SMALL)
    assert again.hash == world.hash and len(world.hash) == 64
    for a, b in ((world.user, again.user), (world.battle, again.battle), (world.day, again.day),
                 (world.liked, again.liked), (world.battles.audio, again.battles.audio)):
        assert np.array_equal(a, b)
    assert generate(WorldParams(seed=4, n_battles=120, n_users=300)).hash != world.hash


def test_time_split_has_no_leakage(world):
    splits = world.splits()
    p = world.params
    assert splits["train"].day.max() < p.val_start <= splits["val"].day.min()
    assert splits["val"].day.max() < p.heldout_start <= splits["heldout"].day.min()
    assert sum(len(s) for s in splits.values()) == len(world.user)
    # Nobody watches a battle before it exists or before joining, and nobody watches one twice:
    # a held-out like is never a battle the user met in an earlier split.
    assert (world.day >= world.battles.created[world.battle]).all()
    assert (world.day >= world.users.joined[world.user]).all()
    pairs = world.user.astype(np.int64) * len(world.battles) + world.battle
    assert len(np.unique(pairs)) == len(pairs)
    # The popularity the gateway and the baseline use counts training-period likes only.
    _, liked = splits["train"].likes()
    counts = np.bincount(liked, minlength=len(world.battles))
    assert np.allclose(popularity(world), counts / counts.max())


def test_world_is_realistic(world):
    likes = np.bincount(world.user[world.liked], minlength=len(world.users))
    active = likes[likes > 0]
    assert np.median(active) < active.mean()  # a long tail: many light users, a few heavy ones
    assert (active < 5).mean() > 0.15
    battle_likes = np.bincount(world.battle[world.liked], minlength=len(world.battles))
    assert np.percentile(battle_likes, 90) > 3 * max(np.median(battle_likes), 1)  # popularity matters
    assert 0.2 < world.liked.mean() < 0.7
    assert set(np.unique(world.battles.genre)) <= set(range(len(GENRES)))
    assert np.abs(world.battles.audio).max() <= 1


def test_audio_descriptor_generalises_to_unseen_battles(world):
    """Genre centroids from half the battles classify the other half: the content tower has signal."""
    audio, genre = world.battles.audio, world.battles.genre
    fit, test = np.arange(0, len(genre), 2), np.arange(1, len(genre), 2)
    present = np.unique(genre[fit])
    centroids = np.stack([audio[fit][genre[fit] == g].mean(0) for g in present])
    guess = present[np.argmin(((audio[test][:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    chance = np.bincount(genre[test]).max() / len(test)
    assert (guess == genre[test]).mean() > max(0.5, 3 * chance)


def test_written_catalogue_loads_and_matches_the_world(world, tmp_path):
    write_gateway_files(world, tmp_path)
    cat = Catalogue.load(tmp_path / "battles.json", tmp_path / "users.json")
    b = world.battles
    assert [x.battle_id for x in cat.battles] == b.ids and [x.title for x in cat.battles] == b.titles
    assert [x.genre for x in cat.battles] == [GENRES[g] for g in b.genre]
    assert np.array_equal(cat.audio_features, b.audio)  # bit for bit what the trainer used
    assert np.allclose([x.popularity for x in cat.battles], popularity(world), atol=5e-5)
    train_users, _ = world.split("train").likes()
    assert cat.known_users == {world.users.ids[u] for u in np.unique(train_users)}
    assert TEST_USER in cat.known_users


def test_the_gateway_serves_the_reference_world():
    """bentos/data is `python -m training.datasets.interactions`'s output, and every user has history."""
    data = PROJECT_ROOT / "bentos" / "data"
    served = Catalogue.load(data / "battles.json", data / "users.json")
    world = generate(WorldParams())
    expected = catalogue(world)
    assert served.battles == expected.battles
    assert np.array_equal(served.audio_features, expected.audio_features)
    assert served.known_users == expected.known_users and TEST_USER in served.known_users
    ids = {u: i for i, u in enumerate(world.users.ids)}
    train_likes = np.bincount(world.split("train").likes()[0], minlength=len(world.users))
    assert all(train_likes[ids[u]] > 0 for u in served.known_users)
    assert len(served.battles) <= 512  # one recommender request (max_batch_size) scores them all
