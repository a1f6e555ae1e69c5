"""HTTP names shared by the gateway, the clients, the load tests and the tests: headers and routes.

Every path of the gateway is written here once; `bentos.service` serves these constants and every
caller uses them (tests/ground/test_routes.py fails when a path is retyped elsewhere;
tests/bentos/test_gateway_app.py when a constant is not served). Ground floor: imports nothing of the
project.
"""

PIN_HEADER = "X-Model-Version"
"""A request pinned to one model version (bypasses canary routing)."""
REQUEST_ID_HEADER = "X-Request-ID"
"""Carried by every answer; the key of its prediction-log entry and of `POST /ai/feedback`."""
ADMIN_TOKEN_ENV = "DJSERVE_ADMIN_TOKEN"
"""Bearer token required by every `/admin/*` route (Authorization: Bearer <token>); without it the
gateway does not mount them at all."""

# --- the gateway's own routes (FastAPI; all of them in /openapi.json) ---------------------------

JUDGE_ANALYZE_ROUTE = "/ai/judge/analyze"
"""POST: score one DJ set (multipart upload or JSON base64)."""
JUDGE_BATTLE_ROUTE = "/ai/judge/battle"
"""POST: both sets of a battle, the winner and the margin."""
LIVE_BEATS_ROUTE = "/ai/live/beats"
"""POST: one chunk of a live stream (beat probability, tempo confidence)."""
SENTIMENT_ROUTE = "/ai/sentiment/analyze"
"""POST: one chat message."""
SENTIMENT_BATCH_ROUTE = "/ai/sentiment/analyze/batch"
"""POST: several chat messages in one call."""
RECOMMENDATIONS_ROUTE = "/ai/recommendations/battles"
"""POST: battles to recommend to a user."""
FEEDBACK_ROUTE = "/ai/feedback"
"""POST: a label learned later, graded against the answer its requestId names."""
MODELS_ROUTE = "/models"
"""GET: every routed version and where its weights come from."""
HEALTH_ROUTE = "/health"
"""GET: 200 healthy, 503 degraded (the design documents' checker)."""
OPENAPI_ROUTE = "/openapi.json"
"""GET: the published contract."""
ADMIN_PREFIX = "/admin"
"""Every route under it needs the admin token, and exists only when the gateway has one."""
STATS_ROUTE = ADMIN_PREFIX + "/stats"
"""GET ?family=: live outcomes per version and the shadow comparison (admin)."""

# --- BentoML's routes (the server around the app; not in /openapi.json) --------------------------

LIVEZ_ROUTE = "/livez"
READYZ_ROUTE = "/readyz"
"""200 only when Triton and every routed model version are ready."""
METRICS_ROUTE = "/metrics"
"""Prometheus exposition."""

APP_ROUTES = (
    JUDGE_ANALYZE_ROUTE, JUDGE_BATTLE_ROUTE, LIVE_BEATS_ROUTE, SENTIMENT_ROUTE, SENTIMENT_BATCH_ROUTE,
    RECOMMENDATIONS_ROUTE, FEEDBACK_ROUTE, MODELS_ROUTE, HEALTH_ROUTE,
)
"""Documented in /openapi.json whatever the configuration."""
ADMIN_ROUTES = (STATS_ROUTE,)
"""Documented in /openapi.json when (and only when) the gateway has an admin token."""
SERVER_ROUTES = (LIVEZ_ROUTE, READYZ_ROUTE, METRICS_ROUTE)
"""Served by BentoML around the app, outside /openapi.json."""
ROUTES = (*APP_ROUTES, *ADMIN_ROUTES, *SERVER_ROUTES, OPENAPI_ROUTE)
"""Every path the gateway serves."""
