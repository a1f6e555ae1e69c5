"""Traffic policies: deterministic canary routing and a policy file re-read while running."""

from __future__ import annotations

import json
import logging
import os

import pytest
from pydantic import ValidationError

from djserve.traffic import FAMILIES, FamilyPolicy, PolicyStore, Route, TrafficPolicy, bucket, route

KEYS = [f"battle-{i}" for i in range(2000)]


def policy(percent: float, *, family: str = "judge", stable: int = 1, canary: int | None = 2) -> TrafficPolicy:
    return TrafficPolicy(families={family: FamilyPolicy(stable=stable, canary=canary, canary_percent=percent)})


def default_policy() -> TrafficPolicy:
    return TrafficPolicy.all_stable(FAMILIES)


def canaried(p: TrafficPolicy, keys=KEYS, family: str = "judge") -> set[str]:
    return {k for k in keys if route(p, family, k).canary}


# --- route ---------------------------------------------------------------------------------------


def test_ten_percent_canary_takes_about_ten_percent_of_keys():
    p = policy(10)
    routes = [route(p, "judge", k) for k in KEYS]
    share = sum(r.canary for r in routes) / len(KEYS)
    assert 0.07 <= share <= 0.13, share
    assert {r.version for r in routes if r.canary} == {2}
    assert {r.version for r in routes if not r.canary} == {1}
    assert not any(r.pinned for r in routes)


def test_same_key_same_version_across_calls_and_stores(tmp_path):
    p = policy(30)
    first = [route(p, "judge", k) for k in KEYS]
    assert [route(p, "judge", k) for k in KEYS] == first

    path = tmp_path / "policy.json"
    PolicyStore(path, default_policy).write(p)
    a, b = PolicyStore(path, default_policy), PolicyStore(path, default_policy)
    assert [route(a.current(), "judge", k) for k in KEYS] == first
    assert [route(b.current(), "judge", k) for k in KEYS] == first


def test_bucket_is_a_stable_hash():
    # a change of hash function would silently reshuffle every live canary
    assert bucket("judge", "battle-1") == bucket("judge", "battle-1")
    assert all(0 <= bucket("judge", k) < 10_000 for k in KEYS[:200])
    import hashlib

    expected = int.from_bytes(hashlib.blake2b(b"judge:battle-1", digest_size=8).digest(), "big") % 10_000
    assert bucket("judge", "battle-1") == expected


def test_zero_and_hundred_percent():
    assert canaried(policy(0)) == set()
    assert canaried(policy(100)) == set(KEYS)
    no_canary = TrafficPolicy(families={"judge": FamilyPolicy(stable=3)})
    assert {route(no_canary, "judge", k) for k in KEYS[:50]} == {Route("judge", 3, canary=False, pinned=False)}


def test_pin_wins():
    for percent in (0, 50, 100):
        r = route(policy(percent), "judge", "battle-7", pinned=5)
        assert r == Route("judge", 5, canary=False, pinned=True)
    r = route(policy(0), "judge", "battle-7", pinned=2)
    assert r.version == 2 and r.pinned and r.canary  # pinned to the canary version
    r = route(policy(100), "judge", "battle-7", pinned=1)
    assert r.version == 1 and r.pinned and not r.canary
    with pytest.raises(ValueError):
        route(policy(10), "judge", "k", pinned=0)


def test_raising_the_share_only_moves_keys_to_the_canary():
    at10, at50 = canaried(policy(10)), canaried(policy(50))
    assert at10 <= at50  # no key moves canary -> stable
    assert 0.45 <= len(at50) / len(KEYS) <= 0.55


def test_families_hash_independently():
    p = TrafficPolicy(
        families={
            "judge": FamilyPolicy(stable=1, canary=2, canary_percent=10),
            "sentiment": FamilyPolicy(stable=1, canary=2, canary_percent=10),
        }
    )
    assert canaried(p, family="judge") != canaried(p, family="sentiment")


def test_unknown_family():
    with pytest.raises(KeyError, match="no traffic policy for model family 'nope'.*judge"):
        route(policy(10), "nope", "k")


# --- validation ------------------------------------------------------------------------------------


def test_validation():
    with pytest.raises(ValidationError, match="no canary version"):
        FamilyPolicy(stable=1, canary_percent=30)
    with pytest.raises(ValidationError, match="both version 2"):
        FamilyPolicy(stable=2, canary=2)
    with pytest.raises(ValidationError):
        FamilyPolicy(stable=0)
    with pytest.raises(ValidationError):
        FamilyPolicy(stable=1, canary=2, canary_percent=100.5)
    with pytest.raises(ValidationError):
        FamilyPolicy(stable=1, canary=2, canary_percent=-1)
    FamilyPolicy(stable=1, canary=2, canary_percent=0)  # a staged canary: reachable only by pin
    parsed = TrafficPolicy.model_validate_json(
        '{"families": {"judge": {"stable": 1, "canary": 2, "canary_percent": 10}},'
        ' "updated_at": "2025-01-01T00:00:00Z", "updated_by": "ops"}'
    )
    assert parsed.families["judge"].canary_percent == 10 and parsed.updated_by == "ops"


def test_all_stable_default_covers_every_family():
    p = TrafficPolicy.all_stable()
    assert set(p.families) == {"judge", "technical", "creative", "beat_tracker", "sentiment", "recommender"}
    assert TrafficPolicy.all_stable({"judge": 4}).families["judge"].stable == 4


# --- PolicyStore -----------------------------------------------------------------------------------


def test_store_uses_the_default_when_the_file_is_absent(tmp_path):
    calls = []

    def default():
        calls.append(1)
        return default_policy()

    store = PolicyStore(tmp_path / "missing" / "policy.json", default)
    assert store.current() == default_policy()
    assert store.current() is store.current()
    assert len(calls) == 1  # cached until the file appears
    assert not store.from_file

    store.write(policy(25))  # creates the parent folder
    assert store.current().families["judge"].canary_percent == 25
    assert store.from_file

    os.unlink(store.path)
    assert store.current().families["judge"].canary is None


def test_store_picks_up_a_rewritten_file_without_restart(tmp_path):
    path = tmp_path / "policy.json"
    store = PolicyStore(path, default_policy)
    store.write(policy(10))
    assert store.current().families["judge"].canary_percent == 10
    store.write(policy(50))  # same size, same second: os.replace gives a new inode
    assert store.current().families["judge"].canary_percent == 50

    # an in-place rewrite (same inode) within the same second is seen too (size / mtime_ns)
    before = os.stat(path)
    path.write_text(json.dumps({"families": {"judge": {"stable": 1, "canary": 2, "canary_percent": 5.5}}}))
    assert os.stat(path).st_ino == before.st_ino
    assert store.current().families["judge"].canary_percent == 5.5

    # a rewrite with the same size and inode but a new mtime_ns
    path.write_text(json.dumps({"families": {"judge": {"stable": 1, "canary": 2, "canary_percent": 7.5}}}))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1))
    assert store.current().families["judge"].canary_percent == 7.5


def test_store_does_not_reread_an_unchanged_file(tmp_path, monkeypatch):
    path = tmp_path / "policy.json"
    store = PolicyStore(path, default_policy)
    store.write(policy(10))
    first = store.current()

    import builtins

    def no_open(*a, **k):
        raise AssertionError("re-read an unchanged file")

    monkeypatch.setattr(builtins, "open", no_open)
    assert store.current() is first


def test_store_merges_missing_families_from_the_default(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"families": {"judge": {"stable": 2}}, "updated_by": "ops"}))
    p = PolicyStore(path, default_policy).current()
    assert p.families["judge"].stable == 2
    assert set(p.families) == set(FAMILIES)
    assert route(p, "sentiment", "u1").version == 1
    assert p.updated_by == "ops"


def test_store_survives_an_invalid_file(tmp_path, caplog):
    path = tmp_path / "policy.json"
    store = PolicyStore(path, default_policy)
    store.write(policy(10))
    good = store.current()

    with caplog.at_level(logging.WARNING, logger="djserve.traffic"):
        path.write_text("{not json")
        for _ in range(5):
            assert store.current() is good
        assert store.last_error and "invalid traffic policy" in store.last_error
        path.write_text(json.dumps({"families": {"judge": {"stable": 1, "canary_percent": 30}}}))
        for _ in range(5):
            assert store.current() is good
        assert "no canary version" in store.last_error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per bad file version, not one per request

    store.write(policy(40))
    assert store.current().families["judge"].canary_percent == 40
    assert store.last_error is None


def test_store_invalid_file_first_serves_the_default(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"families": {"judge": {"stable": 2, "canary": 2}}}')
    store = PolicyStore(path, default_policy)
    assert store.current() == default_policy()
    assert "both version 2" in store.last_error


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "policy.json"
    store = PolicyStore(path, default_policy)
    p = policy(10).model_copy(update={"updated_at": "2025-01-01T00:00:00Z", "updated_by": "ci"})
    store.write(p)
    assert os.listdir(path.parent) == ["policy.json"]
    on_disk = json.loads(path.read_text())
    assert on_disk["families"]["judge"] == {"stable": 1, "canary": 2, "canary_percent": 10.0, "previous_stable": None,
                                             "shadow": None, "shadow_percent": 0.0}
    assert on_disk["updated_by"] == "ci"


def test_shadow_mirrors_the_keys_a_canary_takes_first_and_never_a_pinned_request():
    fp = {"judge": FamilyPolicy(stable=1, shadow=2, shadow_percent=30)}
    p = TrafficPolicy(families=fp)
    keys = [f"k{i}" for i in range(3000)]
    routes = [route(p, "judge", k) for k in keys]
    assert {r.version for r in routes} == {1}  # the shadow answers nobody
    mirrored = [k for k, r in zip(keys, routes) if r.shadow == 2]
    assert abs(len(mirrored) / len(keys) - 0.30) < 0.03
    canary = TrafficPolicy(families={"judge": FamilyPolicy(stable=1, canary=2, canary_percent=30)})
    assert all(route(canary, "judge", k).canary for k in mirrored)
    assert route(p, "judge", mirrored[0], pinned=1).shadow is None
    assert fp["judge"].serving() == [1, 2] and fp["judge"].candidate == 2
    with pytest.raises(ValueError, match="shadow and stable"):
        FamilyPolicy(stable=1, shadow=1)
    with pytest.raises(ValueError, match="no shadow version"):
        FamilyPolicy(stable=1, shadow_percent=5)
