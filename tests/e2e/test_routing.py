"""Canary routing through the running gateway: shares, stickiness, pinning, live policy changes."""

from __future__ import annotations

import json

import httpx
import pytest
import tritonclient.http as triton_http

from djserve.traffic import FamilyPolicy, PolicyStore, TrafficPolicy


@pytest.fixture(scope="module")
def two_sentiment_versions(triton, exported_repository):
    """A second sentiment version (another seed), loaded next to the first."""
    from exporters.isolated import export_isolated

    result = export_isolated("sentiment", exported_repository, seed=1)
    client = triton_http.InferenceServerClient(triton.http_url.removeprefix("http://"))
    client.load_model("sentiment")
    assert client.is_model_ready("sentiment", "1") and client.is_model_ready("sentiment", str(result.version))
    client.close()
    return 1, result.version


@pytest.fixture
def policy(gateway, two_sentiment_versions):
    store = PolicyStore(gateway.policy_file, default=lambda: TrafficPolicy(families={}))
    yield store
    # Leave sentiment on version 1 for the tests after this one (without a file it would be the newest).
    store.write(TrafficPolicy(families={"sentiment": FamilyPolicy(stable=two_sentiment_versions[0])}))


def versions_of(http: httpx.Client, texts: list[str], **headers) -> list[int]:
    out = []
    for i in range(0, len(texts), 64):
        r = http.post("/ai/sentiment/analyze/batch", json={"messages": [{"text": t} for t in texts[i : i + 64]]}, headers=headers)
        assert r.status_code == 200, r.text
        out += [m["modelVersion"] for m in r.json()["results"]]
    return out


def test_canary_share_stickiness_pin_and_live_change(gateway, two_sentiment_versions, policy):
    stable, canary = two_sentiment_versions
    keys = [f"message {i}: what a drop at minute {i % 60}" for i in range(2000)]
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        policy.write(TrafficPolicy(families={"sentiment": FamilyPolicy(stable=stable, canary=canary, canary_percent=10)}))
        first = versions_of(http, keys)
        share = first.count(canary) / len(first)
        assert 0.07 <= share <= 0.13, share
        assert set(first) == {stable, canary}
        assert versions_of(http, keys[:300]) == first[:300]  # the same key always gets the same version

        assert set(versions_of(http, keys[:100], **{"X-Model-Version": str(canary)})) == {canary}
        assert set(versions_of(http, keys[:100], **{"X-Model-Version": str(stable)})) == {stable}

        # A policy change takes effect on the running gateway, without a restart.
        policy.write(TrafficPolicy(families={"sentiment": FamilyPolicy(stable=stable, canary=canary, canary_percent=50)}))
        after = versions_of(http, keys)
        assert 0.47 <= after.count(canary) / len(after) <= 0.53
        assert all(b == canary for a, b in zip(first, after) if a == canary), "raising the share moved no key back"
        assert json.loads(gateway.policy_file.read_text())["families"]["sentiment"]["canary_percent"] == 50
