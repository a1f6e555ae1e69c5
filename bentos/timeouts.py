"""BentoML's request timeout without its memory growth.

BentoML (1.4.x, `bentoml._internal.server.http.traffic.TimeoutMiddleware`) enforces
`traffic={"timeout": ...}` with one `loop.call_later(timeout, ...)` per request and never cancels
it. The timer copies the request's context (contextvars) when it is scheduled, and the middleware
runs inside BentoML's OpenTelemetry middleware, so each timer keeps the request's span (attributes,
events, links: ~5 KB traced) and everything else in its context alive until the timer fires. With
the gateway's 900 s timeout (a 90-minute set takes minutes to score) that is the last 15 minutes of
requests: at 12 requests/s, 10,800 contexts; under the platform's Locust mix the worker's RSS grew
about 6 MiB a minute (loadtest/RESULTS.md, "Soak").

`install()` replaces the middleware's `__call__` with the same logic (a 504 if the app has not
started its response within the timeout), except that the timer runs in an empty context and is
cancelled as soon as the request is over, so a finished request holds nothing. Idempotent; called
when bentos.service is imported, before BentoML builds the app's middleware stack.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

log = logging.getLogger("djserve.gateway")

_MARK = "_djserve_cancels_its_timer"


async def _call(self, scope, receive, send) -> None:
    if scope["type"] not in ("http", "websocket"):
        return await self.app(scope, receive, send)
    from starlette.responses import JSONResponse

    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()
    # An empty context: a copy of the request's would keep its span (and the rest) alive as long as
    # the timer lives.
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter, context=contextvars.Context())

    async def _send(message) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send))
    try:
        try:
            await waiter
        except asyncio.TimeoutError:
            if fut.cancel():
                resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504)
                await resp(scope, receive, send)
        else:
            await fut  # the response has started: the app finishes it, however long that takes
    finally:
        timer.cancel()
        if not fut.done():  # the server cancelled us (client gone, shutdown): do not orphan the app
            fut.cancel()


def install() -> bool:
    """Patch BentoML's TimeoutMiddleware in place; False (and a warning) if it is not there."""
    try:
        from bentoml._internal.server.http.traffic import TimeoutMiddleware
    except ImportError:
        log.warning("bentoml has no TimeoutMiddleware where expected: request timers are not patched")
        return False
    if getattr(TimeoutMiddleware, _MARK, False):
        return True
    if not callable(getattr(TimeoutMiddleware, "_set_timer_out", None)):
        log.warning("bentoml's TimeoutMiddleware changed (no _set_timer_out): request timers are not patched")
        return False
    TimeoutMiddleware.__call__ = _call
    setattr(TimeoutMiddleware, _MARK, True)
    return True
