"""The gateway's real FastAPI app (`bentos.service.app`) in process, with a fake Triton client:
request ids, the admin token, feedback, the prediction log and shadow traffic through the endpoints."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from djserve import api
from djserve.live_stats import FamilyStats
from djserve.prediction_log import FeedbackRecord, PredictionRecord, read
from djserve.traffic import FamilyPolicy
from tests.bentos.fakes import WORDS, FakeTriton, settings, write_policy, write_tokenizer

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    monkeypatch.delenv(api.ADMIN_TOKEN_ENV, raising=False)


def build(tmp_path, fake: FakeTriton | None = None, **overrides):
    """A Gateway instance (no warm-up) made current for the app's class views, and a TestClient."""
    from _bentoml_sdk.service import get_current_service, set_current_service

    from bentos.service import Gateway, app

    s = settings(tmp_path, **overrides)
    write_tokenizer(s.repository, 1)
    gw = object.__new__(Gateway.inner)
    gw._configure(s, fake or FakeTriton())
    try:
        previous = get_current_service()
    except Exception:  # noqa: BLE001 - none yet
        previous = None
    set_current_service(gw)
    return gw, TestClient(app, raise_server_exceptions=False), previous


@pytest.fixture
def make(tmp_path):
    made = []

    def _make(fake: FakeTriton | None = None, **overrides):
        gw, client, previous = build(tmp_path, fake, **overrides)
        write_policy(gw.settings)
        client.__enter__()
        made.append((gw, client, previous))
        return gw, client

    yield _make
    from _bentoml_sdk.service import set_current_service

    for gw, client, previous in made:
        client.portal.call(gw.backend.shadow.close)
        client.__exit__(None, None, None)
        gw.predictions.close()
        set_current_service(previous)


def sentiment(client, text="what a great set", **headers):
    return client.post("/ai/sentiment/analyze", json={"text": text}, headers=headers)


# --- request ids ---------------------------------------------------------------------------------


def test_every_answer_carries_a_request_id_generated_echoed_or_replaced(make):
    gw, client = make(admin_token=TOKEN)
    generated = sentiment(client)
    assert generated.status_code == 200 and HEX32.match(generated.headers[api.REQUEST_ID_HEADER])
    assert sentiment(client).headers[api.REQUEST_ID_HEADER] != generated.headers[api.REQUEST_ID_HEADER]
    mine = "caller-1.a_b:c-" + "x" * 49  # 64 characters of the allowed set
    assert sentiment(client, **{api.REQUEST_ID_HEADER: mine}).headers[api.REQUEST_ID_HEADER] == mine
    for bad in ("has space", "x" * 65, "semi;colon", "\u00fcn\u00efcode".encode("latin-1"), ""):
        rid = sentiment(client, **{api.REQUEST_ID_HEADER: bad}).headers[api.REQUEST_ID_HEADER]
        assert HEX32.match(rid), (bad, rid)
    # errors too: validation, a refused input, an unknown route, the admin refusals
    answers = [
        client.post("/ai/sentiment/analyze", json={}),
        client.post("/ai/sentiment/analyze", json={"text": " "}),
        client.post("/ai/sentiment/analyze", content=b"{not json"),
        client.get("/no/such/route"),
        client.get(api.STATS_ROUTE + "?family=sentiment"),
        client.get(api.STATS_ROUTE + "?family=nope", headers=AUTH),
    ]
    assert [a.status_code for a in answers] == [422, 422, 400, 404, 401, 404]
    assert all(HEX32.match(a.headers.get(api.REQUEST_ID_HEADER, "")) for a in answers), [a.headers for a in answers]
    echoed = client.post("/ai/sentiment/analyze", json={}, headers={api.REQUEST_ID_HEADER: "mine-422"})
    assert echoed.headers[api.REQUEST_ID_HEADER] == "mine-422"


def test_a_500_carries_the_request_id_too(make):
    fake = FakeTriton()
    fake.fail[("sentiment", 1)] = RuntimeError("unexpected")
    gw, client = make(fake)
    r = sentiment(client, **{api.REQUEST_ID_HEADER: "crash-1"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert r.headers[api.REQUEST_ID_HEADER] == "crash-1"


@pytest.fixture
def server_app(monkeypatch):
    """`build_server(traffic)`: BentoML's whole server app (what its worker hands to uvicorn: system
    routes, traffic middlewares, the mounted gateway app) with these traffic settings; no lifespan.
    BentoML's request metrics are off: they register once per process, on the first request."""
    from bentos.service import Gateway

    def build_server(traffic: dict, wrapped: bool = True, metrics: bool = False):
        monkeypatch.setitem(Gateway.config, "traffic", traffic)
        monkeypatch.setitem(Gateway.config, "metrics", {"enabled": metrics})
        return Gateway.to_asgi() if wrapped else type(Gateway).__base__.to_asgi(Gateway)

    yield build_server
    monkeypatch.undo()
    Gateway.inject_config()  # BentoML's global configuration back to the service's own


async def _held_then_refused(server, held_id: str, refused_id: str):
    import asyncio

    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://gateway") as c:
        held = asyncio.create_task(c.post(api.SENTIMENT_ROUTE, json={"text": "great set"}, headers={api.REQUEST_ID_HEADER: held_id}))
        await asyncio.sleep(0.05)
        refused = await c.post(api.SENTIMENT_ROUTE, json={"text": "great set"}, headers={api.REQUEST_ID_HEADER: refused_id})
        livez = await c.get(api.LIVEZ_ROUTE)
        return await held, refused, livez


def test_bentoml_own_answers_carry_the_request_id(make, server_app):
    """BentoML answers a request past `traffic.timeout` (504) and one past `traffic.max_concurrency`
    (429) from middlewares around the app's; the gateway wraps the whole server app, so those carry
    the id too. Without the wrapping (BentoML's own `to_asgi`), they do not."""
    import asyncio

    fake = FakeTriton()
    fake.hold.add(1)  # every sentiment call waits: the first request times out, the second is one too many
    make(fake)
    traffic = {"timeout": 0.3, "max_concurrency": 1}
    timed_out, refused, livez = asyncio.run(_held_then_refused(server_app(traffic), "held-1", "refused-2"))
    assert (timed_out.status_code, refused.status_code, livez.status_code) == (504, 429, 200), timed_out.text
    assert timed_out.headers[api.REQUEST_ID_HEADER] == "held-1"
    assert refused.headers[api.REQUEST_ID_HEADER] == "refused-2"
    assert HEX32.match(livez.headers[api.REQUEST_ID_HEADER])

    fake.release = None  # the hold's event belongs to the first run's loop
    timed_out, refused, _ = asyncio.run(_held_then_refused(server_app(traffic, wrapped=False), "held-3", "refused-4"))
    assert (timed_out.status_code, refused.status_code) == (504, 429)
    assert api.REQUEST_ID_HEADER not in timed_out.headers and api.REQUEST_ID_HEADER not in refused.headers


def test_every_route_constant_is_served(make, server_app):
    """The app's /openapi.json documents exactly the route constants of djserve.api (a new route
    needs one), and BentoML's server app serves the system ones around it."""
    gw, client = make(admin_token=TOKEN)
    doc = client.get(api.OPENAPI_ROUTE)
    assert doc.status_code == 200
    assert set(doc.json()["paths"]) == set(api.APP_ROUTES) | set(api.ADMIN_ROUTES)
    server = server_app({"timeout": 900}, metrics=True)  # no request: nothing registered
    served = {getattr(r, "path", None) for r in server.app.routes}
    assert set(api.SERVER_ROUTES) <= served, served
    assert set(api.ROUTES) == {*api.APP_ROUTES, *api.ADMIN_ROUTES, *api.SERVER_ROUTES, api.OPENAPI_ROUTE}
    assert all(r.startswith(api.ADMIN_PREFIX + "/") for r in api.ADMIN_ROUTES)
    assert not [r for r in api.APP_ROUTES if r.startswith(api.ADMIN_PREFIX)]


# --- admin token ---------------------------------------------------------------------------------


def test_admin_routes_need_the_bearer_token(make):
    gw, client = make(admin_token=TOKEN)
    sentiment(client)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        r = client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in r.text
    assert client.get(api.STATS_ROUTE).status_code == 401  # the token is checked before the query
    ok = client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=AUTH)
    assert ok.status_code == 200
    stats = FamilyStats.model_validate(ok.json())
    assert stats.versions["1"].requests_total == 1 and stats.shadow is None
    assert client.get(api.STATS_ROUTE, headers={"Authorization": f"bearer {TOKEN}"}).status_code == 422  # scheme: any case


def test_admin_routes_are_not_mounted_without_a_configured_token(make):
    from bentos.service import app

    gw, client = make()
    for route in api.ADMIN_ROUTES:
        for headers in ({}, AUTH):
            r = client.get(route, params={"family": "sentiment"}, headers=headers)
            assert r.status_code == 404, (route, headers, r.text)
            assert r.json() == client.get("/no/such/route", headers=headers).json()  # like any unknown path
            assert HEX32.match(r.headers[api.REQUEST_ID_HEADER])
        assert client.post(route, headers=AUTH).status_code == 404  # not even a 405: no route at all
    paths = client.get(api.OPENAPI_ROUTE).json()["paths"]
    assert not [p for p in paths if p.startswith(api.ADMIN_PREFIX)], list(paths)
    assert set(api.APP_ROUTES) <= set(paths) and app.openapi()["paths"].keys() == paths.keys()


def test_a_gateway_with_a_token_mounts_them_again(make):
    """One process, gateways configured one after the other (as the tests do): mounting follows the
    configuration of the last one, both ways, and the cached /openapi.json follows it."""
    make()
    gw, client = make(admin_token=TOKEN)
    assert set(api.ADMIN_ROUTES) <= set(client.get(api.OPENAPI_ROUTE).json()["paths"])
    assert client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=AUTH).status_code == 200
    assert client.get(api.STATS_ROUTE, params={"family": "sentiment"}).status_code == 401
    gw, client = make()
    assert client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=AUTH).status_code == 404
    assert not set(api.ADMIN_ROUTES) & set(client.get(api.OPENAPI_ROUTE).json()["paths"])


def test_every_admin_route_is_guarded(make):
    from bentos.service import app

    gw, client = make(admin_token=TOKEN)
    admin = [(method, path) for path, ops in app.openapi()["paths"].items() if path.startswith("/admin") for method in ops]
    assert ("get", api.STATS_ROUTE) in admin
    for method, path in admin:
        assert client.request(method.upper(), path).status_code == 401, (method, path)


def test_the_token_comes_from_DJSERVE_ADMIN_TOKEN(monkeypatch):
    from bentos.settings import GatewaySettings

    monkeypatch.setenv(api.ADMIN_TOKEN_ENV, "from-env")
    assert GatewaySettings().admin_token.get_secret_value() == "from-env"
    assert "from-env" not in repr(GatewaySettings())
    monkeypatch.setenv(api.ADMIN_TOKEN_ENV, "")
    assert GatewaySettings().admin_token is None


# --- prediction log and feedback -----------------------------------------------------------------


def test_feedback_is_joined_scored_logged_and_counted(make):
    gw, client = make(admin_token=TOKEN)
    answer = sentiment(client, "the set is great", **{api.REQUEST_ID_HEADER: "chat-1"})
    label = answer.json()["sentiment"]
    other = next(x for x in ("negative", "neutral", "positive") if x != label)

    right = client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "sentiment_label", "value": label})
    assert right.status_code == 202, right.text
    assert right.json() == {"requestId": "chat-1", "family": "sentiment", "version": 1, "metric": "accuracy", "score": 1.0}
    assert HEX32.match(right.headers[api.REQUEST_ID_HEADER])
    wrong = client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "sentiment_label", "value": other})
    assert wrong.status_code == 202 and wrong.json()["score"] == 0.0

    refusals = {
        "unknown": client.post(api.FEEDBACK_ROUTE, json={"requestId": "never-seen", "kind": "sentiment_label", "value": label}),
        "kind": client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "judge_score", "value": 0.5}),
        "index": client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "sentiment_label", "value": label, "index": 1}),
        "value": client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "sentiment_label", "value": "meh"}),
        "malformed": client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "value": label}),
        "bad kind": client.post(api.FEEDBACK_ROUTE, json={"requestId": "chat-1", "kind": "vibes", "value": label}),
    }
    got = {k: (r.status_code, r.json()["error"]["code"]) for k, r in refusals.items()}
    assert got == {"unknown": (404, "unknown_request_id"), "kind": (422, "label_mismatch"), "index": (422, "label_mismatch"),
                   "value": (422, "label_mismatch"), "malformed": (422, "invalid_request"), "bad kind": (422, "invalid_request")}
    assert refusals["kind"].json()["error"]["field"] == "kind" and "sentiment" in refusals["kind"].json()["error"]["message"]
    assert "out of range" in refusals["index"].json()["error"]["message"]

    labels = FamilyStats.model_validate(client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=AUTH).json()).version(1).labels
    assert (labels.total, labels.metric, labels.scores, labels.mean) == (2, "accuracy", [1.0, 0.0], 0.5)

    preds = list(read(gw.settings.predictions_dir, "predictions", PredictionRecord))
    assert [(p.request_id, p.family, p.version, p.endpoint) for p in preds] == [("chat-1", "sentiment", 1, "/ai/sentiment/analyze")]
    assert preds[0].outputs == {"labels": [label], "versions": [1]}
    from djserve.prediction_log import digest

    assert preds[0].inputs_sha256 == digest("the set is great")
    feedback = list(read(gw.settings.predictions_dir, "feedback", FeedbackRecord))
    assert [(f.request_id, f.value, f.score) for f in feedback] == [("chat-1", label, 1.0), ("chat-1", other, 0.0)]


def test_batch_labels_grade_the_version_each_message_went_to(make):
    gw, client = make(admin_token=TOKEN)
    write_tokenizer(gw.settings.repository, 2)
    write_policy(gw.settings, sentiment=FamilyPolicy(stable=1, canary=2, canary_percent=50))
    texts = [f"what a {w} set {i}" for i, w in enumerate(WORDS * 2)]
    r = client.post("/ai/sentiment/analyze/batch", json={"messages": [{"text": t} for t in texts]},
                    headers={api.REQUEST_ID_HEADER: "batch-1"})
    assert r.status_code == 200, r.text
    versions = [m["modelVersion"] for m in r.json()["results"]]
    assert set(versions) == {1, 2}
    for i in (versions.index(1), versions.index(2)):
        fb = client.post(api.FEEDBACK_ROUTE, json={"requestId": "batch-1", "kind": "sentiment_label", "index": i,
                                                   "value": r.json()["results"][i]["sentiment"]})
        assert fb.status_code == 202 and fb.json()["version"] == versions[i] and fb.json()["score"] == 1.0
    stats = FamilyStats.model_validate(client.get(api.STATS_ROUTE, params={"family": "sentiment"}, headers=AUTH).json())
    assert stats.version(1).labels.total == 1 and stats.version(2).labels.total == 1


def test_recommendations_are_logged_but_cold_starts_and_feedback_are_not(make):
    gw, client = make()
    known = client.post("/ai/recommendations/battles", json={"userId": "test-user-123", "limit": 3},
                        headers={api.REQUEST_ID_HEADER: "recs-1"})
    assert known.status_code == 200 and known.json()["coldStart"] is False
    ids = [b["battleId"] for b in known.json()["recommendations"]]
    cold = client.post("/ai/recommendations/battles", json={"userId": "nobody-knows-me"}, headers={api.REQUEST_ID_HEADER: "cold-1"})
    assert cold.status_code == 200 and cold.json()["coldStart"] is True
    click = client.post(api.FEEDBACK_ROUTE, json={"requestId": "recs-1", "kind": "recommendation_click", "value": ids[1]})
    assert click.status_code == 202 and click.json()["score"] == 0.5 and click.json()["family"] == "recommender"
    assert client.post(api.FEEDBACK_ROUTE, json={"requestId": "cold-1", "kind": "recommendation_click", "value": ids[0]}).status_code == 404
    preds = list(read(gw.settings.predictions_dir, "predictions", PredictionRecord))
    assert [(p.request_id, p.outputs) for p in preds] == [("recs-1", {"battle_ids": ids})]


def test_a_failing_prediction_log_does_not_fail_the_request(make, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("not a folder")
    gw, client = make(predictions_dir=blocker)
    assert sentiment(client).status_code == 200
    assert gw.predictions.errors == 1


# --- shadow through the endpoints ----------------------------------------------------------------


def wait_for_pairs(client, n: int, family: str = "sentiment") -> FamilyStats:
    deadline = time.monotonic() + 10
    while True:
        stats = FamilyStats.model_validate(client.get(api.STATS_ROUTE, params={"family": family}, headers=AUTH).json())
        if (stats.shadow and stats.shadow.mirrored_total >= n) or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_shadow_mirrors_sentiment_without_touching_the_answers(make):
    fake = FakeTriton()
    gw, client = make(fake, admin_token=TOKEN)
    write_tokenizer(gw.settings.repository, 2)
    write_policy(gw.settings, sentiment=FamilyPolicy(stable=1, shadow=2, shadow_percent=100))
    answers = [sentiment(client, f"what a great drop {i}") for i in range(5)]
    assert all(a.status_code == 200 and a.json()["modelVersion"] == 1 for a in answers)
    stats = wait_for_pairs(client, 5)
    sh = stats.shadow
    assert (sh.stable, sh.shadow, sh.mirrored_total, sh.pairs, sh.errors_total, sh.agreement) == (1, 2, 5, 5, 0, 1.0)
    assert sh.diff_mean == 0.0 and set(stats.versions) == {"1"}
    assert sorted(fake.versions_called("sentiment")) == [1] * 5 + [2] * 5


def test_a_shadow_with_its_own_tokenizer_gets_its_own_tokens(make):
    fake = FakeTriton()
    gw, client = make(fake, admin_token=TOKEN)
    write_tokenizer(gw.settings.repository, 2, words=list(reversed(WORDS)))  # another vocabulary
    write_policy(gw.settings, sentiment=FamilyPolicy(stable=1, shadow=2, shadow_percent=100))
    assert sentiment(client, "what a great set").status_code == 200
    wait_for_pairs(client, 1)
    (_, _, v1), (_, _, v2) = sorted((c for c in fake.calls if c[0] == "sentiment"), key=lambda c: c[1])
    assert v1["input_ids"].tolist() != v2["input_ids"].tolist()
    assert v1["attention_mask"].tolist() == v2["attention_mask"].tolist()  # the same words, other ids


def test_an_audio_fault_found_while_decoding_a_live_chunk_is_its_4xx(make, monkeypatch):
    """A chunk whose header passes but whose decoded audio is too short (an MP3 of 0.3 s decoding to
    a little less) was a 500 from the live thread pool."""
    import base64

    from bentos import audio, live
    from loadtest.samples import click_track, encode

    def too_short(source):
        raise audio.AudioError("audio_too_short", "audio is 0.3 s long; at least 0.3 s is needed")

    monkeypatch.setattr(live, "_beat_mel", too_short)
    gw, client = make()
    chunk = base64.b64encode(encode(click_track(128, 1.0))).decode()
    r = client.post("/ai/live/beats", json={"streamId": "s-1", "audioData": {"base64": chunk}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "audio_too_short", r.text
    assert sentiment(client).status_code == 200  # and the gateway serves everyone else
