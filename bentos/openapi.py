"""The gateway's published contract: request bodies and error answers in `/openapi.json`.

The endpoints read their bodies themselves (to answer every refusal with an `ErrorBody` of their
own), so FastAPI cannot see them; this module declares them from the same pydantic models of
`djserve.schemas`, so a backend can generate a client and an API fuzzer can send real bodies.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from bentos.request_id import VALID as REQUEST_ID_PATTERN
from djserve.api import FEEDBACK_ROUTE, PIN_HEADER, REQUEST_ID_HEADER
from djserve.schemas import ErrorBody

REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "malformed input (not JSON, bad base64, an audio file that cannot be decoded)",
    401: "the admin token is missing or wrong",
    404: "unknown model version (X-Model-Version), request id or family",
    413: "the body or the audio is over its limit",
    415: "an audio format the gateway does not read",
    422: "the request does not fit its schema or a limit (too short, too many messages, unknown genre)",
    429: "the route is at capacity (its analyses and queue are full); retry after Retry-After seconds",
    502: "the model version failed on this request",
    503: "Triton is unavailable or the routed version is not loaded; retry after Retry-After seconds",
}


def errors(*statuses: int) -> dict[int, dict[str, Any]]:
    """`responses=` for a route: each status answers an ErrorBody (429 and 503 with Retry-After)."""
    out: dict[int, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorBody, "description": _ERRORS[status]}
        if status in (429, 503):
            out[status]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` declaring a JSON request body of `model`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(model)}}}}


def multipart_or_json_body(form: dict[str, dict[str, Any]], required: list[str], model: type[BaseModel]) -> dict[str, Any]:
    """A body that is either multipart/form-data with `form` fields or JSON of `model`."""
    multipart = {"type": "object", "properties": form, "required": required}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": multipart},
        "application/json": {"schema": _ref(model)},
    }}}


PIN_PARAMETER: dict[str, Any] = {
    "name": PIN_HEADER, "in": "header", "required": False,
    "description": "pin the request to this loaded version of the endpoint's model family (bypasses canary "
                   "routing); 404 when it is not loaded, 400 when it is not a version number",
    "schema": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
}
REQUEST_ID_RESPONSE_HEADER: dict[str, Any] = {
    "description": f"the caller's id when it sent a valid one, else a new one; what POST {FEEDBACK_ROUTE} names",
    "required": True,
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern},
}


def pinned(extra: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra=` of a model endpoint: its body and the optional pin header."""
    return {**extra, "parameters": [PIN_PARAMETER]}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    _BODIES.add(model)
    return {"$ref": REF.format(model=model.__name__)}


_BODIES: set[type[BaseModel]] = set()


def install(app: FastAPI) -> None:
    """Add the request models' schemas to the document FastAPI generates (once, cached by FastAPI)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        _, defs = models_json_schema([(m, "validation") for m in sorted(_BODIES, key=lambda m: m.__name__)],
                                     by_alias=True, ref_template=REF)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in defs.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        for operations in doc.get("paths", {}).values():  # every answer carries X-Request-ID
            for operation in operations.values():
                for answer in operation.get("responses", {}).values():
                    answer.setdefault("headers", {})[REQUEST_ID_HEADER] = REQUEST_ID_RESPONSE_HEADER
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
