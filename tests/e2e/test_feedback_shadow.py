"""Request ids, feedback and shadow traffic on a running stack of this module's own (Triton + gateway).

An answer carries X-Request-ID; feedback naming it is graded and shows up in /admin/stats (which
needs the admin token); a shadow version with identical weights gets every mirrored request, agrees
with the stable version on all of them, and no caller ever gets the shadow's answer.
"""

from __future__ import annotations

import re
import shutil
import time

import httpx
import pytest

from djserve import api
from djserve.live_stats import FamilyStats
from djserve.prediction_log import PredictionRecord, read
from djserve.specs import EXPORTED
from djserve.traffic import FAMILIES, FamilyPolicy, PolicyStore, TrafficPolicy
from loadtest.samples import click_track, encode
from tests.conftest import ADMIN_TOKEN, copy_committed_repository, local_stack, poll

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def stack(exported_repository, tmp_path_factory):
    """Triton with every model at version 1 and sentiment also at version 2 (a copy of 1), and a
    gateway whose policy routes everything to version 1."""
    root = tmp_path_factory.mktemp("feedback_shadow")
    repo = copy_committed_repository(root / "model_repository")
    for name in EXPORTED:
        shutil.copytree(exported_repository / name / "1", repo / name / "1")
    shutil.copytree(exported_repository / "sentiment" / "1", repo / "sentiment" / "2")  # identical weights
    state = root / "state"
    policies = PolicyStore(state / "traffic_policy.json", default=lambda: TrafficPolicy(families={}))
    policies.write(TrafficPolicy.all_stable(FAMILIES))  # without a file the newest (sentiment 2) would serve
    with local_stack(repo, state) as running:
        with httpx.Client(base_url=running.gateway.url, timeout=60) as http:
            yield http, policies, state


def stats(http: httpx.Client, family: str) -> FamilyStats:
    r = http.get(api.STATS_ROUTE, params={"family": family}, headers=AUTH)
    assert r.status_code == 200, r.text
    return FamilyStats.model_validate(r.json())


def test_answers_carry_request_ids_and_feedback_shows_in_admin_stats(stack):
    http, policies, state = stack
    r = http.post("/ai/sentiment/analyze", json={"text": "This is an amazing DJ set!"})
    assert r.status_code == 200, r.text
    rid, label = r.headers[api.REQUEST_ID_HEADER], r.json()["sentiment"]
    assert HEX32.match(rid) and r.json()["modelVersion"] == 1
    assert http.get("/livez").headers.get(api.REQUEST_ID_HEADER)  # BentoML's own routes too
    assert http.post("/ai/sentiment/analyze", json={"text": "x"}, headers={api.REQUEST_ID_HEADER: "mine-1"}).headers[
        api.REQUEST_ID_HEADER] == "mine-1"

    fb = http.post(api.FEEDBACK_ROUTE, json={"requestId": rid, "kind": "sentiment_label", "value": label})
    assert fb.status_code == 202, fb.text
    assert fb.json() == {"requestId": rid, "family": "sentiment", "version": 1, "metric": "accuracy", "score": 1.0}
    assert http.post(api.FEEDBACK_ROUTE, json={"requestId": "unknown-id", "kind": "sentiment_label",
                                               "value": label}).status_code == 404

    unauthorized = http.get(api.STATS_ROUTE, params={"family": "sentiment"})
    assert unauthorized.status_code == 401 and unauthorized.headers["WWW-Authenticate"] == "Bearer"
    assert unauthorized.json()["error"]["code"] == "unauthorized" and unauthorized.headers[api.REQUEST_ID_HEADER]
    v1 = stats(http, "sentiment").version(1)
    assert v1.requests_total >= 2 and v1.errors_total == 0
    assert (v1.labels.total, v1.labels.metric, v1.labels.scores) == (1, "accuracy", [1.0])

    # A judge score is graded by its distance from the judges' own.
    sheet = http.post("/ai/judge/analyze", data={"battleId": "b-feedback", "genre": "house"},
                      files={"audio": ("a.wav", encode(click_track(128, 3)))}, headers={api.REQUEST_ID_HEADER: "judge-1"})
    assert sheet.status_code == 200, sheet.text
    graded = http.post(api.FEEDBACK_ROUTE, json={"requestId": "judge-1", "kind": "judge_score", "value": 0.5})
    assert graded.status_code == 202, graded.text
    assert graded.json()["metric"] == "neg_abs_error"
    assert graded.json()["score"] == pytest.approx(-abs(sheet.json()["overallScore"] - 0.5), abs=1e-9)
    mismatch = http.post(api.FEEDBACK_ROUTE, json={"requestId": "judge-1", "kind": "sentiment_label", "value": "positive"})
    assert mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "label_mismatch"
    assert stats(http, "judge").version(1).labels.total == 1

    logged = {p.request_id: p for p in read(state / "predictions", "predictions", PredictionRecord)}
    assert logged[rid].outputs == {"labels": [label], "versions": [1]}
    assert logged["judge-1"].outputs == {"overall_score": sheet.json()["overallScore"]}
    assert not any(p.endpoint == api.FEEDBACK_ROUTE for p in logged.values())


def test_a_shadow_with_identical_weights_gets_mirrored_requests_and_agrees(stack):
    http, policies, state = stack
    policies.write(TrafficPolicy(families={**policies.current().families,
                                           "sentiment": FamilyPolicy(stable=1, shadow=2, shadow_percent=100)}))
    try:
        texts = [f"message {i}: what a drop at minute {i}, incredible!" for i in range(30)]
        answers = [http.post("/ai/sentiment/analyze", json={"text": t}) for t in texts]
        batch = http.post("/ai/sentiment/analyze/batch",
                          json={"messages": [{"text": t} for t in ("great set", "awful transition", "ok " * 40)]})
        assert all(a.status_code == 200 for a in answers + [batch])
        versions = [a.json()["modelVersion"] for a in answers] + [m["modelVersion"] for m in batch.json()["results"]]
        assert set(versions) == {1}, "every caller gets the stable version"

        assert poll(lambda: (stats(http, "sentiment").shadow.mirrored_total or 0) >= len(texts) + 1, 30)
        def settled() -> bool:  # the queue has drained: two reads a moment apart agree
            first = stats(http, "sentiment").shadow.mirrored_total
            time.sleep(0.5)
            return stats(http, "sentiment").shadow.mirrored_total == first

        assert poll(settled, 30)
        sh = stats(http, "sentiment").shadow
        assert (sh.stable, sh.shadow, sh.dropped_total, sh.errors_total) == (1, 2, 0, 0)
        assert sh.pairs == sh.mirrored_total >= len(texts) + 1
        assert sh.agreement == 1.0
        assert abs(sh.diff_mean) < 1e-4 and max(abs(a - b) for a, b in zip(sh.stable_values, sh.shadow_values)) < 1e-4
        assert sh.latency_p95_s["stable"] > 0 and sh.latency_p95_s["shadow"] > 0
        assert "2" not in stats(http, "sentiment").versions, "shadow outcomes stay out of the versions' stats"

        metrics = http.get("/metrics").text
        ok = [l for l in metrics.splitlines() if l.startswith("ai_shadow_requests_total{")
              and 'model_type="sentiment"' in l and 'outcome="ok"' in l and 'version="2"' in l]
        assert len(ok) == 1 and float(ok[0].rsplit(" ", 1)[1]) == sh.mirrored_total
        agreement = [l for l in metrics.splitlines() if l.startswith("ai_shadow_agreement{") and 'model_type="sentiment"' in l]
        assert len(agreement) == 1 and float(agreement[0].rsplit(" ", 1)[1]) == 1.0
        def bucket(le: str) -> float:
            found = [l for l in metrics.splitlines() if l.startswith("ai_shadow_score_difference_bucket{")
                     and 'model_type="sentiment"' in l and f'le="{le}"' in l]
            assert len(found) == 1
            return float(found[0].rsplit(" ", 1)[1])

        assert bucket("-0.01") == 0 and bucket("0.01") == sh.mirrored_total  # identical weights: differences ~0
    finally:
        policies.write(TrafficPolicy.all_stable(FAMILIES))
