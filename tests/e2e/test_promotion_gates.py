"""Promotion decided on quality, on the real stack under load (Triton, the gateway, MLflow on sqlite).

Recommender candidates against a champion trained for one epoch, all on the quick profile (held-out
NDCG@10 on 250 users: one epoch about 0.21, the profile's epochs about 0.25, shuffled labels about
0.04, with paired intervals a few points wide):

- better (more epochs): offline gate passes, shadow -> 10 -> 50 -> 100 -> complete under `watch`,
  with zero failed requests;
- worse (shuffled labels): refused by the offline gate, nothing exported, production unchanged;
- broken online (passes offline, but the gateway injects errors into its version, as a drill):
  rolled back automatically by the online gates, production back on the champion.

The recommender, not the judge: on the quick profile's 60 held-out windows the judge's R^2 is
noise (4 epochs 0.11, 8 epochs -0.15, shuffled labels 0.07), and a gate asked to tell them apart
rightly cannot.
"""

from __future__ import annotations

import json
import shutil
import threading

import httpx
import pytest

from djserve.mlops.online_gates import OnlineGateConfig
from djserve.mlops.promotion import Promoter, PromotionError, PromotionSettings
from djserve.registry import CHAMPION
from djserve.settings import Settings
from djserve.specs import EXPORTED
from djserve.settings import PROJECT_ROOT
from tests.conftest import ADMIN_TOKEN, CI_LATENCY_SLACK_S, copy_committed_repository, local_stack, skip_without_tritonserver

skip_without_tritonserver()

FAMILY = "recommender"
USERS = [u["userId"] for u in json.loads((PROJECT_ROOT / "bentos" / "data" / "users.json").read_text())][:400]
BROKEN_VERSION = 3  # v1 champion, v2 the better candidate, v3 the broken one


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """champion (1 epoch), better (the quick profile's), worse (shuffled labels): registered runs."""
    from djserve.mlops.publish import export_registered
    from training.run import train_isolated

    state = tmp_path_factory.mktemp("gates-state")
    repo = copy_committed_repository(tmp_path_factory.mktemp("gates-repo") / "model_repository")
    mp = pytest.MonkeyPatch()
    mp.setenv("DJSERVE_STATE_DIR", str(state))
    champion = train_isolated(FAMILY, state, profile="quick", epochs=1)
    export_registered(champion.registry_uri, repo, state)  # v1, the registry's champion
    runs = {
        "champion": champion,
        "better": train_isolated(FAMILY, state, profile="quick"),
        "worse": train_isolated(FAMILY, state, profile="quick", shuffle_labels=True),
    }
    yield state, repo, runs
    mp.undo()


@pytest.fixture(scope="module")
def stack(trained, exported_repository):
    state, repo, runs = trained
    for name in EXPORTED:
        if name != FAMILY:
            shutil.copytree(exported_repository / name / "1", repo / name / "1")
    faults = {FAMILY: {"version": BROKEN_VERSION, "error_rate": 0.3, "delay_s": 0.0}}
    with local_stack(repo, state, DJSERVE_GATEWAY_FAULT_INJECTION=json.dumps(faults)) as running:
        promo = PromotionSettings(
            triton_http_url=running.triton_http_urls, gateway_url=running.gateway.url, admin_token=ADMIN_TOKEN, drain_s=1.0,
            watch_poll_s=0.5, watch_step_timeout_s=300, shadow_min_pairs=40,
            gates=OnlineGateConfig(min_requests=30, error_rate_regression=0.1, min_latencies=20, min_values=30,
                                   latency_slack_s=CI_LATENCY_SLACK_S),
        )
        promoter = Promoter(Settings(repository=repo, state_dir=state), promo, log=print)
        promoter.materialize()
        yield promoter, running.gateway, runs


class Load:
    """Recommendation requests of known users from two clients; every status code is kept."""

    def __init__(self, url: str, threads: int = 2):
        self.url, self.stop, self.codes = url, threading.Event(), []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                r = http.post("/ai/recommendations/battles", json={"userId": USERS[(7 * n + i) % len(USERS)], "limit": 10})
                self.codes.append(r.status_code)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def production(promoter: Promoter):
    return promoter.policy(FAMILY), promoter.triton.loaded_versions(FAMILY), promoter.registry.alias_version(FAMILY, CHAMPION)


def test_a_worse_candidate_is_refused_offline_with_production_unchanged(stack):
    promoter, gateway, runs = stack
    before, versions = production(promoter), sorted(p.name for p in (promoter.repo.model_dir(FAMILY)).iterdir())
    with pytest.raises(PromotionError, match="refused by the offline gate"):
        promoter.promote(FAMILY, runs["worse"].registry_uri, shadow_percent=50)
    assert production(promoter) == before
    assert sorted(p.name for p in promoter.repo.model_dir(FAMILY).iterdir()) == versions  # nothing exported
    gate = [h for h in promoter.registry.history(FAMILY) if h["action"] == "offline_gate"][-1]
    assert gate["verdict"] == "fail" and gate["comparison"]["ci_high"] < 0  # worse, with confidence
    assert gate["version"] == runs["worse"].registry_version


def test_a_better_candidate_goes_shadow_to_complete_without_a_failed_request(stack):
    promoter, gateway, runs = stack
    with Load(gateway.url) as load:
        promoted = promoter.promote(FAMILY, runs["better"].registry_uri, shadow_percent=50)
        assert promoted.offline.verdict == "pass" and promoted.offline.comparison.difference > 0
        assert promoter.policy(FAMILY).shadow == promoted.triton_version == 2
        outcome = promoter.watch(FAMILY, steps=[10, 50, 100])
    assert outcome == "completed"
    assert load.codes and set(load.codes) == {200}, {c: load.codes.count(c) for c in set(load.codes)}
    fp = promoter.policy(FAMILY)
    assert fp.stable == 2 and fp.canary is None and fp.shadow is None and fp.previous_stable == 1
    assert promoter.registry.alias_version(FAMILY, CHAMPION) == runs["better"].registry_version
    history = promoter.registry.history(FAMILY)
    shadow = [h for h in history if h["action"] == "shadow"][-1]
    assert shadow["pairs"] >= 40 and shadow["agreement"] is not None
    gates = [h for h in history if h["action"] == "gate"]
    assert [g["canary_percent"] for g in gates][-3:] == [10, 50, 100] and all(g["verdict"] == "pass" for g in gates[-3:])
    assert gates[-1]["expected_from"] == "shadow"


def test_a_candidate_broken_online_is_rolled_back_automatically(stack):
    promoter, gateway, runs = stack
    stable = promoter.policy(FAMILY).stable
    promoted = promoter.promote(FAMILY, runs["better"].registry_uri, canary_percent=10)  # passes offline: same as champion
    assert promoted.triton_version == BROKEN_VERSION and promoted.offline.verdict == "pass"
    with Load(gateway.url):
        outcome = promoter.watch(FAMILY, steps=[10, 50, 100])
    assert outcome == "rolled_back"
    fp = promoter.policy(FAMILY)
    assert fp.stable == stable and fp.canary is None
    assert promoter.triton.loaded_versions(FAMILY) == sorted({stable, fp.previous_stable or stable})
    gate = [h for h in promoter.registry.history(FAMILY) if h["action"] == "gate"][-1]
    assert gate["verdict"] == "fail" and any("error" in r for r in gate["reasons"])
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        r = http.post("/ai/recommendations/battles", json={"userId": USERS[1], "limit": 10})
        assert r.status_code == 200 and r.json()["modelVersion"] == stable
