"""Every gateway path is written once, in djserve/api.py: the gateway, the clients and the load tests
use its constants. A path retyped as a string literal in their sources fails here (that it is served
is checked in tests/bentos/test_gateway_app.py::test_every_route_constant_is_served).

Documentation strings (module, class, function and attribute docstrings) may name paths; code may not.
Tests may: a literal in a test pins the wire contract the constant must keep."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from djserve import api

ROOT = Path(__file__).resolve().parents[2]

SCANNED = ("bentos", "clients", "loadtest", "djserve", "exporters", "training")
"""Every package of the project (the tests excepted)."""

ALLOWED = {("djserve/triton/server.py", "/metrics")}
"""Triton's own metrics endpoint, not the gateway's."""

PATHS = sorted({*api.ROUTES, api.ADMIN_PREFIX}, key=len, reverse=True)
_PATTERN = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, PATHS)) + r")(?![\w-])")


def retyped(source: str) -> list[tuple[int, str]]:
    """(line, path) of every gateway path inside a string literal of `source` that is not a docstring
    (f-string pieces included)."""
    tree = ast.parse(source)
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [
        (node.lineno, m.group(1))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        for m in _PATTERN.finditer(node.value)
    ]


def test_no_route_is_retyped_outside_djserve_api():
    offences = []
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "djserve/api.py":
                continue
            offences += [f"{rel}:{line}: {route!r}" for line, route in retyped(path.read_text(encoding="utf-8"))
                         if (rel, route) not in ALLOWED]
    assert not offences, "use the constants of djserve.api:\n" + "\n".join(offences)


def test_the_check_sees_a_retyped_route():
    source = '''
"""Module docs may say POST /ai/sentiment/analyze."""
import httpx

def ready(url):
    """GET /readyz."""
    return httpx.get(f"{url}/readyz").status_code == 200

PATHS = {"batch": "/ai/sentiment/analyze/batch", "admin": "/admin/stats?family=judge", "all": "/admin/*"}
OTHERS = ["/v2/models/judge", "model_repository/models", "/ai/sentiment/analyzer", "http://x:8002/metrics2"]
'''
    assert sorted(retyped(source)) == sorted([(7, api.READYZ_ROUTE), (9, api.SENTIMENT_BATCH_ROUTE), (9, api.STATS_ROUTE),
                                              (9, api.ADMIN_PREFIX)])


def test_every_constant_is_a_distinct_absolute_path():
    assert len(set(api.ROUTES)) == len(api.ROUTES)
    assert all(r.startswith("/") and not r.endswith("/") and " " not in r for r in api.ROUTES)
