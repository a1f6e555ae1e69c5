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
        gw.featurizer.close()
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
    # the digits are one unknown token: v1 answers once, then from the row cache; the shadow still gets all 5
    assert sorted(fake.versions_called("sentiment")) == [1] + [2] * 5


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


# --- the pin header ------------------------------------------------------------------------------


def _raw_post(client, path: str, body: bytes, headers: list[tuple[bytes, bytes]]):
    """A request whose header bytes reach the app as sent (httpx would re-encode a non-ASCII str)."""
    from bentos.service import app

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "client": ("t", 1),
             "server": ("gateway", 80), "headers": [(b"content-type", b"application/json"),
                                                    (b"content-length", str(len(body)).encode()), *headers]}
    sent, received = [], [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return received.pop(0) if received else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    try:
        client.portal.call(app, scope, receive, send)
    except Exception:  # noqa: BLE001 - Starlette re-raises after it has sent its 500
        pass
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_pin_that_is_not_a_plain_version_number_is_a_400_never_a_500(make):
    """`str.isdigit()` is true for '²' (a latin-1 header byte) and for 5,000 digits, which `int()`
    refuses (ValueError): both were 500s."""
    import json

    gw, client = make()
    for raw in (b"\xb2", b"\xb9", b"1" * 5000, b"\xd9\xa3", b"0", b"-1", b"+1", b"1_0", b"latest", b""):
        status, body = _raw_post(client, api.SENTIMENT_ROUTE, b'{"text": "great set"}', [(api.PIN_HEADER.lower().encode(), raw)])
        assert (status, json.loads(body)["error"]["code"]) == (400, "invalid_header"), (raw[:20], status, body[:300])
    for raw, status in ((b"1", 200), (b" 1 ", 200), (b"2", 404), (b"9" * 18, 404)):
        assert _raw_post(client, api.SENTIMENT_ROUTE, b'{"text": "great set"}', [(api.PIN_HEADER.lower().encode(), raw)])[0] == status, raw


# --- Starlette's own refusals --------------------------------------------------------------------


def test_starlettes_own_refusals_are_error_bodies_too(make):
    """A multipart body that cannot be parsed was `{"detail": "Invalid multipart data."}` (found by the
    fuzzer, tests/e2e/test_api_fuzz.py): not the published ErrorBody. So were an unknown path and a
    method the path does not have."""
    from djserve.schemas import ErrorBody

    gw, client = make()
    boundary = "a222103b9b30b1f9e8be6882ecedb1d2"
    broken = client.post(api.JUDGE_ANALYZE_ROUTE, content=f"--{boundary}\r\n[]--{boundary}--\r\n".encode(),
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}", api.REQUEST_ID_HEADER: "mp-1"})
    unknown = client.get("/no/such/route")
    method = client.get(api.SENTIMENT_ROUTE)
    answers = {"multipart": broken, "unknown": unknown, "method": method}
    got = {k: (r.status_code, ErrorBody.model_validate(r.json()).error.code) for k, r in answers.items()}
    assert got == {"multipart": (400, "invalid_multipart"), "unknown": (404, "not_found"), "method": (405, "method_not_allowed")}
    assert broken.headers[api.REQUEST_ID_HEADER] == "mp-1" and method.headers["Allow"] == "POST"
    assert sentiment(client).status_code == 200


# --- the use cases with the fake models ----------------------------------------------------------


@pytest.fixture(scope="module")
def clicks():
    """Short click tracks (bytes): a 6 s set at 128 BPM, a 2 s live chunk at 120 BPM. And librosa's
    numba kernels compiled (or loaded from their cache) once, as the gateway does at start: seconds on
    a busy machine, which would otherwise land on whichever audio test runs first."""
    from bentos import audio
    from loadtest.samples import click_track, encode

    audio.warm_up()
    return {"set": encode(click_track(128, 6.0)), "other": encode(click_track(140, 6.0, seed=3)),
            "chunk": encode(click_track(120, 2.0))}


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def test_judge_scores_a_set_uploaded_or_in_json_and_its_label_grades_it(make, clicks):
    import json

    from djserve.specs.genres import GENRE_WEIGHTS, JUDGE_COMPONENTS

    gw, client = make()
    tracks = [{"title": "Strings of Life", "artist": "Rhythim Is Rhythim"}]
    upload = client.post(api.JUDGE_ANALYZE_ROUTE, files={"audio": ("set.wav", clicks["set"], "audio/wav")},
                         data={"battleId": "b-1", "genre": "Techno", "tracks": json.dumps(tracks)},
                         headers={api.REQUEST_ID_HEADER: "judge-1"})
    assert upload.status_code == 200, upload.text
    sheet = upload.json()
    assert sheet["genre"] == "techno" and sheet["genreKnown"] is True
    assert set(sheet["components"]) == set(JUDGE_COMPONENTS) and len(sheet["technical"]) == len(sheet["creative"]) == 4
    expected = sum(w * sheet["components"][c] for w, c in zip(GENRE_WEIGHTS["techno"], JUDGE_COMPONENTS))
    assert sheet["overallScore"] == pytest.approx(expected, abs=1e-5)
    assert sheet["modelVersions"] == {"judge": 1, "technical": 1, "creative": 1}
    assert sheet["audio"]["windows"] == 1 and sheet["audio"]["durationSeconds"] == pytest.approx(6.0, abs=0.05)
    assert abs(sheet["tempo"]["bpm"] - 128) <= 2  # the gateway's own tempo, not a model's

    as_json = client.post(api.JUDGE_ANALYZE_ROUTE, json={"battleId": "b-1", "genre": "techno", "tracks": tracks,
                                                         "audioData": {"base64": b64(clicks["set"]), "format": "wav"}})
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["components"] == sheet["components"]

    graded = client.post(api.FEEDBACK_ROUTE, json={"requestId": "judge-1", "kind": "judge_score", "value": 0.5})
    assert graded.status_code == 202 and graded.json()["family"] == "judge"
    assert graded.json()["score"] == pytest.approx(-abs(sheet["overallScore"] - 0.5), abs=1e-6)


def test_a_battle_names_the_winner_and_refuses_one_dj_twice(make, clicks):
    gw, client = make()
    sets = [{"djId": "dj-a", "audioData": {"base64": b64(clicks["set"])}},
            {"djId": "dj-b", "audioData": {"base64": b64(clicks["other"])}}]
    r = client.post(api.JUDGE_BATTLE_ROUTE, json={"battleId": "battle-1", "genre": "techno", "sets": sets})
    assert r.status_code == 200, r.text
    body = r.json()
    a, b = (body["sheets"][dj]["overallScore"] for dj in ("dj-a", "dj-b"))
    assert a != b and body["winner"] == ("dj-a" if a > b else "dj-b") and body["margin"] == pytest.approx(abs(a - b), abs=1e-6)
    same = client.post(api.JUDGE_BATTLE_ROUTE, json={"battleId": "battle-1", "genre": "techno",
                                                     "sets": [sets[0], {**sets[1], "djId": "dj-a"}]})
    assert (same.status_code, same.json()["error"]["code"], same.json()["error"]["field"]) == (422, "invalid_request", "sets")


def test_live_beats_finds_the_clicks_of_a_chunk_and_keeps_a_stream_on_one_version(make, clicks):
    gw, client = make()
    write_policy(gw.settings, beat_tracker=FamilyPolicy(stable=1, canary=2, canary_percent=50))
    body = {"streamId": "stream-7", "audioData": {"base64": b64(clicks["chunk"]), "format": "wav"}}
    first = client.post(api.LIVE_BEATS_ROUTE, json=body)
    assert first.status_code == 200, first.text
    beats = first.json()
    assert beats["streamId"] == "stream-7" and beats["beatProbability"] == pytest.approx(1.0)
    assert beats["durationSeconds"] == pytest.approx(2.0, abs=0.05) and beats["frames"] > 80
    assert len(beats["beats"]) >= 3 and all(abs((t / 0.5) - round(t / 0.5)) < 0.1 for t in beats["beats"])  # every 0.5 s
    again = [client.post(api.LIVE_BEATS_ROUTE, json=body).json()["modelVersion"] for _ in range(3)]
    assert again == [beats["modelVersion"]] * 3  # the stream id is the routing key
    others = {client.post(api.LIVE_BEATS_ROUTE, json={**body, "streamId": f"s-{i}"}).json()["modelVersion"] for i in range(12)}
    assert others == {1, 2}


def test_a_second_of_live_audio_is_analysed_on_the_event_loop_and_a_long_chunk_off_it(make, clicks, monkeypatch):
    """Short chunks skip the thread handoff (it cost them the interpreter lock twice); a 5 s chunk would
    hold the loop for every other request, so it goes to the live pool."""
    import threading

    from bentos import live
    from loadtest.samples import click_track, encode

    threads, real = [], live._beat_mel
    monkeypatch.setattr(live, "_beat_mel", lambda source: threads.append(threading.current_thread().name) or real(source))
    gw, client = make()
    for chunk in (clicks["chunk"], encode(click_track(120, 5.0))):
        r = client.post(api.LIVE_BEATS_ROUTE, json={"streamId": "s", "audioData": {"base64": b64(chunk)}})
        assert r.status_code == 200 and len(r.json()["beats"]) >= 3, r.text
    assert not threads[0].startswith("live-features") and threads[1].startswith("live-features"), threads


def test_recommendations_are_ranked_and_limited(make):
    gw, client = make(max_recommendations=4)
    r = client.post(api.RECOMMENDATIONS_ROUTE, json={"userId": "test-user-123", "limit": 10})
    assert r.status_code == 200, r.text
    scores = [b["score"] for b in r.json()["recommendations"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True) and r.json()["modelVersion"] == 1
    assert client.post(api.RECOMMENDATIONS_ROUTE, json={"userId": "u", "limit": "ten"}).json()["error"]["code"] == "invalid_request"


def test_sentiment_answers_the_fake_models_label(make):
    gw, client = make()
    one = sentiment(client, "what a great set")
    assert one.status_code == 200
    body = one.json()
    assert body["sentiment"] == max(body["scores"], key=body["scores"].get) and body["modelVersion"] == 1
    assert sum(body["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    batch = client.post(api.SENTIMENT_BATCH_ROUTE, json={"messages": [{"text": "what a great set"}, {"text": "awful mix"}]})
    assert batch.status_code == 200 and batch.json()["results"][0]["scores"] == pytest.approx(body["scores"])
    assert client.post(api.SENTIMENT_BATCH_ROUTE, json={"messages": []}).json()["error"]["code"] == "empty_batch"


# --- Triton's failures, mapped ---------------------------------------------------------------------


def _unavailable():
    from tritonclient.utils import InferenceServerException

    return InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")


def _failed():
    from tritonclient.utils import InferenceServerException

    return InferenceServerException("onnx runtime error: shape mismatch", status="StatusCode.INTERNAL")


def _not_loaded():
    from tritonclient.utils import InferenceServerException

    return InferenceServerException("Request for unknown model: 'x' version 2 is not found", status="StatusCode.NOT_FOUND")


def _timed_out():
    import asyncio

    return asyncio.TimeoutError()


def _use_cases(clicks) -> dict[str, tuple[str, str, dict]]:
    """use case -> (the family its request calls first, route, body)"""
    return {
        "judge": ("judge", api.JUDGE_ANALYZE_ROUTE, {"battleId": "b", "genre": "house", "audioData": {"base64": b64(clicks["set"])}}),
        "live": ("beat_tracker", api.LIVE_BEATS_ROUTE, {"streamId": "s", "audioData": {"base64": b64(clicks["chunk"])}}),
        "sentiment": ("sentiment", api.SENTIMENT_ROUTE, {"text": "what a great set"}),
        "recommend": ("recommender", api.RECOMMENDATIONS_ROUTE, {"userId": "test-user-123", "limit": 3}),
    }


@pytest.mark.parametrize("failure, status, code", [
    (_unavailable, 503, "triton_unavailable"),
    (_failed, 502, "inference_failed"),
    (_not_loaded, 503, "triton_unavailable"),  # the policy routes to a version Triton has not loaded
    (_timed_out, 503, "triton_unavailable"),
])
def test_triton_failures_map_to_their_status_in_every_use_case(make, clicks, failure, status, code):
    fake = FakeTriton()
    gw, client = make(fake)
    for use_case, (family, route, body) in _use_cases(clicks).items():
        fake.fail.clear()
        fake.fail[(family, 1)] = failure()
        r = client.post(route, json=body, headers={api.REQUEST_ID_HEADER: f"{use_case}-1"})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (use_case, r.text)
        assert r.headers[api.REQUEST_ID_HEADER] == f"{use_case}-1"
        assert ("Retry-After" in r.headers) == (status == 503), use_case
        if status == 503:
            assert int(r.headers["Retry-After"]) >= 1
    fake.fail.clear()
    assert sentiment(client).status_code == 200  # and the next request is served


def test_a_pinned_version_triton_does_not_have_is_a_404_in_every_use_case(make, clicks):
    fake = FakeTriton()
    gw, client = make(fake)
    for use_case, (family, route, body) in _use_cases(clicks).items():
        fake.fail[(family, 2)] = _not_loaded()
        r = client.post(route, json=body, headers={api.PIN_HEADER: "2"})
        assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["field"]) == (404, "unknown_model_version", api.PIN_HEADER), use_case
        assert client.post(route, json=body, headers={api.PIN_HEADER: "1"}).status_code == 200, use_case


def test_a_drill_fails_the_named_version_only(make):
    gw, client = make(fault_injection={"sentiment": {"version": 1, "error_rate": 1.0}})
    r = sentiment(client)
    assert (r.status_code, r.json()["error"]["code"]) == (502, "injected_fault")
    assert client.post(api.RECOMMENDATIONS_ROUTE, json={"userId": "test-user-123"}).status_code == 200


# --- per-stage latency ---------------------------------------------------------------------------


class SlowTriton(FakeTriton):
    """Every call takes `delay` seconds: the inference stage must show it, the other stages must not."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def infer(self, model, inputs, version=None):
        import asyncio

        await asyncio.sleep(self.delay)
        return await super().infer(model, inputs, version)


def stage_seconds(model_type: str) -> dict[str, tuple[float, float]]:
    """stage -> (count, sum) of ai_model_prediction_latency_seconds for a model type, successes only."""
    from prometheus_client import REGISTRY

    from bentos.metrics import STAGES

    got = {}
    for s in STAGES:
        values = [
            (m.name, m.value) for metric in REGISTRY.collect() if metric.name == "ai_model_prediction_latency_seconds"
            for m in metric.samples if m.labels.get("model_type") == model_type and m.labels.get("stage") == s
            and m.labels.get("status") == "success" and m.name.endswith(("_count", "_sum"))
        ]
        got[s] = (sum(v for n, v in values if n.endswith("_count")), sum(v for n, v in values if n.endswith("_sum")))
    return got


def test_each_prediction_is_timed_by_stage(make, clicks):
    """A 200 ms Triton shows in the inference stage of every use case (once per request, however many
    models a judge window calls at once: not 600 ms), and the stages account for the whole."""
    delay = 0.2
    gw, client = make(SlowTriton(delay))
    calls = {
        "sentiment": lambda: sentiment(client),
        "recommendations": lambda: client.post(api.RECOMMENDATIONS_ROUTE, json={"userId": "test-user-123", "limit": 3}),
        "beat_tracker": lambda: client.post(api.LIVE_BEATS_ROUTE, json={"streamId": "s", "audioData": {"base64": b64(clicks["chunk"])}}),
        "judge": lambda: client.post(api.JUDGE_ANALYZE_ROUTE, files={"audio": ("set.wav", clicks["set"], "audio/wav")},
                                     data={"battleId": "b-1", "genre": "techno"}),
    }
    for model_type, call in calls.items():
        before = stage_seconds(model_type)
        assert call().status_code == 200
        after = stage_seconds(model_type)
        count = {s: after[s][0] - before[s][0] for s in after}
        took = {s: after[s][1] - before[s][1] for s in after}
        assert count == {"total": 1, "preprocess": 1, "inference": 1, "postprocess": 1}, (model_type, count)
        # the judge's 6 s set is one window: its three models run concurrently, so one delay, not three
        assert delay <= took["inference"] < 2 * delay, (model_type, took)
        parts = [took[s] for s in ("preprocess", "inference", "postprocess")]
        if model_type == "judge":  # pipelined: the next window's features (and tempo) overlap the scoring
            assert max(parts) <= took["total"] and sum(parts) >= 0.5 * took["total"], (model_type, took)
        else:  # one after the other
            assert sum(parts) <= took["total"] + 1e-3, (model_type, took)


# --- admission control of uploads ----------------------------------------------------------------


class JudgeHeld(FakeTriton):
    """The judge's models wait for `gate` (set from the app's loop); every other model answers at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = None

    async def infer(self, model, inputs, version=None):
        import asyncio

        if model in ("judge", "technical", "creative"):
            if self.gate is None:
                self.gate = asyncio.Event()
            await self.gate.wait()
        return await super().infer(model, inputs, version)


def refused_total() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("ai_admission_refused_total", {"route": "judge"}) or 0.0


def test_uploads_beyond_capacity_are_refused_with_retry_after_while_chat_is_served(make, clicks):
    import functools
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import poll

    fake = JudgeHeld()
    gw, client = make(fake, judge_max_concurrent=1, judge_max_queued=1, retry_after_s=3)
    upload = functools.partial(client.post, api.JUDGE_ANALYZE_ROUTE, files={"audio": ("set.wav", clicks["set"], "audio/wav")},
                               data={"battleId": "b-1", "genre": "techno"})
    battle = {"battleId": "b-2", "genre": "techno", "sets": [{"djId": "a", "audioData": {"base64": b64(clicks["set"])}},
                                                             {"djId": "b", "audioData": {"base64": b64(clicks["other"])}}]}
    before = refused_total()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(upload)
        assert poll(lambda: gw.uploads.running == 1 and fake.gate is not None, 30)
        second = pool.submit(upload)
        assert poll(lambda: gw.uploads.queued == 1, 30)
        answers = [upload(), client.post(api.JUDGE_BATTLE_ROUTE, json=battle)]
        for r in answers:
            assert r.status_code == 429 and r.headers["Retry-After"] == "3", r.text
            assert r.json()["error"]["code"] == "overloaded" and "1 analyses running, 1 queued" in r.json()["error"]["message"]
        assert sentiment(client).status_code == 200  # chat is not held up behind the uploads
        client.portal.call(fake.gate.set)
        assert [first.result(timeout=60).status_code, second.result(timeout=60).status_code] == [200, 200]
    assert refused_total() - before == 2 and (gw.uploads.running, gw.uploads.queued) == (0, 0)
    assert client.post(api.JUDGE_BATTLE_ROUTE, json=battle).status_code == 200  # two units, capped at the capacity


# --- micro-batching ------------------------------------------------------------------------------


@pytest.mark.parametrize("batching", [True, False])
def test_concurrent_chat_messages_share_triton_calls_and_each_gets_its_own_answer(make, batching):
    """16 callers at once on a 20 ms model: joined, far fewer calls than requests; every answer is the
    one that message gets alone, and the live stats (canary gates) still count every request."""
    from concurrent.futures import ThreadPoolExecutor

    fake = SlowTriton(0.02)
    gw, client = make(fake, micro_batching=batching, row_cache_entries=0)  # repeats must reach Triton here
    texts = [" ".join(WORDS[i % len(WORDS)] for i in range(k, k + 3)) for k in range(16)]  # one bucket, 16 messages
    alone = {t: sentiment(client, t).json()["sentiment"] for t in texts}
    fake.calls.clear()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: sentiment(client, t), texts * 4))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json()["sentiment"] for a in answers] == [alone[t] for t in texts * 4]
    calls = len(fake.calls)
    assert (calls < 40) if batching else (calls == 64), calls
    assert gw.backend.monitor.stats("sentiment", gw.backend.policies.current().families["sentiment"]).version(1).requests_total == 80
