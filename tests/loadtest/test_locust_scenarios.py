"""The real Locust CLI against the real gateway and Triton (the session fixtures).

Locust runs as a subprocess of `loadtest`: it is never imported here (it monkey-patches the
standard library with gevent). Nothing asserts latency: the p95 limit is set out of reach, except
in the test that makes it impossible on purpose. Every task gets weight 1 so a short run calls
every endpoint, the rare judge upload included.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from loadtest.cli import loadtest
from loadtest.locust_run import SCENARIOS, LoadTestError, _run_bounded, parse_weights, task_weights
from tests.conftest import free_port

OUT_OF_REACH_MS = "1000000"


def invoke(*args: str):
    app = typer.Typer()
    app.command()(loadtest)
    return CliRunner().invoke(app, list(args))


def every_task_once(scenario: str) -> str:
    return ",".join(f"{task}=1" for task in SCENARIOS[scenario].weights)


def explain(result, out: Path) -> str:
    log = out / "locust.log"
    return result.output + (log.read_text()[-3000:] if log.exists() else "")


def assert_every_endpoint_served(scenario: str, out: Path) -> None:
    assert (out / "locust.json").is_file()
    assert (out / "locust_stats.csv").read_text().startswith("Type,Name,Request Count,Failure Count")
    entries = {e["name"]: e for e in json.loads((out / "locust.json").read_text())}
    for endpoint in SCENARIOS[scenario].endpoints.values():
        assert entries.get(endpoint, {}).get("num_requests", 0) > 0, f"no request to {endpoint}: {sorted(entries)}"
        assert entries[endpoint]["num_failures"] == 0, endpoint
    slo = json.loads((out / "slo.json").read_text())
    assert slo["passed"] and slo["failed"] == []
    assert {e["name"] for e in slo["endpoints"]} == set(entries)


def test_gateway_scenario_calls_every_endpoint_without_failures(gateway, tmp_path):
    out = tmp_path / "gateway"
    result = invoke(
        "gateway", "--host", gateway.url, "--users", "4", "--seconds", "6", "--out", str(out),
        "--p95-ms", OUT_OF_REACH_MS, "--weights", every_task_once("gateway"),
    )  # fmt: skip
    assert result.exit_code == 0, explain(result, out)
    assert_every_endpoint_served("gateway", out)
    assert "every SLO holds" in result.output


def test_triton_scenario_calls_every_model_over_grpc_concurrently(triton, tmp_path):
    out = tmp_path / "triton"
    result = invoke(
        "triton", "--host", f"grpc://{triton.grpc_url}", "--users", "4", "--seconds", "5", "--out", str(out),
        "--p95-ms", OUT_OF_REACH_MS, "--weights", every_task_once("triton"),
    )  # fmt: skip
    assert result.exit_code == 0, explain(result, out)
    assert_every_endpoint_served("triton", out)
    methods = {e["method"] for e in json.loads((out / "locust.json").read_text())}
    assert methods == {"grpc"}
    # gevent + gRPC: with the blocking calls cooperative, several users wait on Triton at once.
    overlap = re.search(r"gRPC calls in flight at once, at most: (\d+)", (out / "locust.log").read_text())
    assert overlap and int(overlap.group(1)) > 1, explain(result, out)


def test_an_impossible_p95_fails_and_names_the_slo(triton, tmp_path):
    out = tmp_path / "impossible"
    result = invoke(
        "triton", "--host", triton.grpc_url, "--users", "2", "--seconds", "2", "--out", str(out),
        "--p95-ms", "0.001", "--weights", "sentiment=1,recommender=0,beat_tracker=0,judge=0",
    )  # fmt: skip
    assert result.exit_code == 1, explain(result, out)
    assert re.search(r"SLO failed: sentiment p95 [\d.]+ ms > 0\.001 ms", result.output), result.output
    slo = json.loads((out / "slo.json").read_text())
    assert not slo["passed"] and len(slo["failed"]) == 1 and slo["failed"][0].startswith("sentiment p95 ")


def test_an_unreachable_server_fails_every_endpoint(tmp_path):
    out = tmp_path / "nobody"
    result = invoke("triton", "--host", f"127.0.0.1:{free_port()}", "--users", "2", "--seconds", "2", "--out", str(out))
    assert result.exit_code == 1, explain(result, out)
    assert re.search(r"SLO failed: sentiment failure rate 1 > 0 \((\d+) of \1 requests failed\)", result.output), result.output
    assert "UNAVAILABLE" in (out / "locust_failures.csv").read_text()


def test_task_weights_are_overridable():
    assert task_weights("gateway", {}) == dict(SCENARIOS["gateway"].weights)
    env = {"DJSERVE_LOADTEST_WEIGHTS": "judge=3, sentiment=0"}
    assert task_weights("gateway", env) == {**SCENARIOS["gateway"].weights, "judge": 3, "sentiment": 0}
    for bad in ("judge", "judge=x", "bogus=1", "judge=-1"):
        with pytest.raises(LoadTestError, match="bad task weight"):
            parse_weights(bad, SCENARIOS["gateway"].weights)
    with pytest.raises(LoadTestError, match="every task weight"):
        task_weights("triton", {"DJSERVE_LOADTEST_WEIGHTS": "sentiment=0,recommender=0,beat_tracker=0,judge=0"})


def test_a_bad_weight_is_refused_before_locust_starts(tmp_path):
    result = invoke("gateway", "--weights", "bogus=1", "--out", str(tmp_path / "x"))
    assert result.exit_code == 1 and "bad task weight 'bogus=1'" in result.output
    assert not (tmp_path / "x").exists()


def test_a_run_that_outlives_its_limit_is_killed(tmp_path):
    seen = []
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    assert _run_bounded(command, {}, tmp_path / "log", 1.0, seen.append) is None
    assert seen  # progress was reported while it ran
