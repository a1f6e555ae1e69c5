"""Request ids: every answer of the gateway's HTTP API carries `X-Request-ID` (djserve.api).

A caller's id is kept when it is 1-64 characters of `A-Za-z0-9._:-`; anything else (or none) gets a
fresh `uuid4().hex`. The id of the request being handled is in `current()` (a contextvar), so
endpoint code can log it and key the prediction log by it; `POST /ai/feedback` names it later.

A pure ASGI middleware: one header scan and one header added per request, nothing buffered.
"""

from __future__ import annotations

import contextvars
import re
import uuid

from djserve.api import REQUEST_ID_HEADER

VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("djserve_request_id", default=None)


def current() -> str | None:
    """The id of the request being handled (None outside a request)."""
    return _current.get()


def accept(raw: str | None) -> str:
    """The caller's id if it is valid, else a new one."""
    if raw is not None and VALID.match(raw):
        return raw
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets the request id (contextvar and `scope["state"]["request_id"]`) and adds the header to
    the response start, whatever the route and status.

    Installed twice: around BentoML's whole server app (bentos.service wraps what `to_asgi()`
    returns, so /livez, /readyz, /metrics and BentoML's own 504 and 429 answer with an id) and on the
    mounted FastAPI app (so the app alone, e.g. under a TestClient, does too); the inner one reuses
    the outer one's id."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        rid = state.get("request_id")  # set by an outer instance (BentoML's app around the mounted one)
        if rid is None:
            raw = None
            for name, value in scope.get("headers") or ():
                if name == _HEADER:
                    raw = value.decode("latin-1")
                    break
            rid = state["request_id"] = accept(raw)
        # Not reset afterwards on purpose: the server's last-resort error handler (outside this
        # middleware, same task) reads it for its 500. Each request runs in a task (context) of its own.
        _current.set(rid)
        header = (_HEADER, rid.encode("latin-1"))

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER]
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
