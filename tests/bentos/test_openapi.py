"""The published contract (`/openapi.json`): every body and every error answer is in it."""

from __future__ import annotations

import json

import pytest

from djserve.schemas import ErrorBody


@pytest.fixture(scope="module")
def doc():
    from bentos.service import app

    return app.openapi()


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_every_post_route_declares_its_body(doc):
    posts = {path: ops["post"] for path, ops in doc["paths"].items() if "post" in ops}
    assert set(posts) >= {"/ai/judge/analyze", "/ai/judge/battle", "/ai/live/beats", "/ai/sentiment/analyze",
                          "/ai/sentiment/analyze/batch", "/ai/recommendations/battles", "/ai/feedback"}
    for path, op in posts.items():
        assert "application/json" in op["requestBody"]["content"], path
    upload = posts["/ai/judge/analyze"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["audio"]["format"] == "binary" and set(upload["required"]) == {"audio", "battleId", "genre"}
    assert posts["/ai/sentiment/analyze"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SentimentRequest"}


def test_errors_are_error_bodies_and_503_says_when_to_retry(doc):
    error_ref = "#/components/schemas/ErrorBody"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")) and path != "/health":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": error_ref}, (method, path, status)
    beats = doc["paths"]["/ai/live/beats"]["post"]["responses"]
    assert {"413", "415", "422", "503"} <= set(beats) and "Retry-After" in beats["503"]["headers"]
    assert doc["components"]["schemas"]["ErrorBody"] == json.loads(json.dumps(
        doc["components"]["schemas"]["ErrorBody"]))  # serialisable
    assert set(ErrorBody.model_fields) == set(doc["components"]["schemas"]["ErrorBody"]["properties"])


def test_every_reference_resolves_and_uses_the_wire_names(doc):
    schemas = doc["components"]["schemas"]
    missing = {r for r in _refs(doc) if r.rsplit("/", 1)[1] not in schemas}
    assert not missing
    assert "battleId" in schemas["JudgeRequest"]["properties"]  # camelCase, as sent
    assert "requestId" in schemas["FeedbackRequest"]["properties"]


def test_model_endpoints_declare_the_pin_header_and_every_answer_its_request_id(doc):
    from djserve import api

    pinned = {path for path, ops in doc["paths"].items() for op in ops.values()
              if any(p["name"] == api.PIN_HEADER and p["in"] == "header" for p in op.get("parameters", []))}
    assert pinned == {api.JUDGE_ANALYZE_ROUTE, api.JUDGE_BATTLE_ROUTE, api.LIVE_BEATS_ROUTE, api.SENTIMENT_ROUTE,
                      api.SENTIMENT_BATCH_ROUTE, api.RECOMMENDATIONS_ROUTE}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                assert answer["headers"][api.REQUEST_ID_HEADER]["required"] is True, (method, path, status)
    assert "Retry-After" in doc["paths"][api.SENTIMENT_ROUTE]["post"]["responses"]["503"]["headers"]
