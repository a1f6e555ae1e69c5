"""Run a Locust scenario headless in a subprocess, bounded in time, then check the SLOs.

Why a subprocess: Locust monkey-patches the standard library with gevent when it is imported, and
anything that imported `requests`, TF or mlflow first breaks it, so the CLI and the
tests never import locust; they run its CLI. This module is also what the locustfiles import for
the scenario definitions, so it must stay light (no locust, no rich).

    result = run("gateway", users=8, seconds=30)
    result.report.passed, result.out_dir / "slo.json"
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping

from djserve import api
from djserve.settings import PROJECT_ROOT, settings
from loadtest.slo import GATEWAY_REALTIME, TRITON_REALTIME, SloPolicy, SloReport, check_file

HERE = Path(__file__).resolve().parent
#: `task=weight,...` overriding a scenario's task weights (0 switches a task off). Read by the
#: locustfiles; tests set it so that the rare judge task runs in a short run too.
WEIGHTS_ENV = "DJSERVE_LOADTEST_WEIGHTS"


@dataclass(frozen=True)
class Scenario:
    name: str
    locustfile: Path
    default_host: str
    weights: Mapping[str, int]
    """task -> default Locust weight (the realistic traffic mix)."""
    endpoints: Mapping[str, str]
    """task -> the request name its calls are reported under."""
    realtime: tuple[str, ...] = field(default=())


SCENARIOS: dict[str, Scenario] = {
    "gateway": Scenario(
        name="gateway",
        locustfile=HERE / "gateway_locustfile.py",
        default_host="http://127.0.0.1:3000",
        # Chat sentiment dominates live traffic; whole-set judging is rare and heavy.
        weights={"sentiment": 12, "sentiment_batch": 2, "recommendations": 5, "live_beats": 4, "judge": 1},
        endpoints={
            "sentiment": api.SENTIMENT_ROUTE,
            "sentiment_batch": api.SENTIMENT_BATCH_ROUTE,
            "recommendations": api.RECOMMENDATIONS_ROUTE,
            "live_beats": api.LIVE_BEATS_ROUTE,
            "judge": api.JUDGE_ANALYZE_ROUTE,
        },
        realtime=GATEWAY_REALTIME,
    ),
    "triton": Scenario(
        name="triton",
        locustfile=HERE / "triton_locustfile.py",
        default_host="127.0.0.1:8001",
        weights={"sentiment": 6, "recommender": 3, "beat_tracker": 2, "judge": 1},
        endpoints={"sentiment": "sentiment", "recommender": "recommender", "beat_tracker": "beat_tracker", "judge": "judge"},
        realtime=TRITON_REALTIME,
    ),
}


class LoadTestError(RuntimeError):
    """The run itself went wrong (Locust failed to start, hung, or wrote no stats)."""


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise LoadTestError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def parse_weights(text: str, known: Mapping[str, int]) -> dict[str, int]:
    """`"judge=1,sentiment=0"` -> {"judge": 1, "sentiment": 0}, checked against the known tasks."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        task, sep, value = part.partition("=")
        task = task.strip()
        if not sep or task not in known or not value.strip().isdigit():
            raise LoadTestError(f"bad task weight {part!r}: expected task=integer, tasks: {', '.join(known)}")
        weights[task] = int(value)
    return weights


def task_weights(name: str, environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """The scenario's weights with `DJSERVE_LOADTEST_WEIGHTS` applied (what a locustfile runs)."""
    defaults = scenario(name).weights
    merged = {**defaults, **parse_weights(environ.get(WEIGHTS_ENV, ""), defaults)}
    if not any(merged.values()):
        raise LoadTestError(f"every task weight of {name!r} is 0: {merged}")
    return merged


def locust_tasks(name: str, funcs: Mapping[str, Callable]) -> dict[Callable, int]:
    """A locustfile's `tasks` dict: task functions at the scenario's weights, the 0s left out."""
    weights = task_weights(name)
    if set(funcs) != set(weights):
        raise LoadTestError(f"{name}: the locustfile's tasks {sorted(funcs)} differ from the scenario's {sorted(weights)}")
    return {funcs[task]: weight for task, weight in weights.items() if weight > 0}


@dataclass
class RunResult:
    scenario: str
    out_dir: Path
    json_file: Path
    csv_prefix: Path
    log_file: Path
    returncode: int | None
    """Locust's exit status (1 when any request failed); None when it was killed at the hard limit."""
    report: SloReport


def default_out_dir(name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = settings().state_dir / "loadtest"
    out, n = base / f"{stamp}-{name}", 1
    while out.exists():
        n += 1
        out = base / f"{stamp}-{name}-{n}"
    return out


def locust_command(sc: Scenario, host: str, users: int, spawn_rate: float, seconds: int, out: Path, stop_timeout: int) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", str(sc.locustfile),
        "--headless", "--only-summary",
        "-u", str(users), "-r", f"{spawn_rate:g}", "-t", f"{seconds}s",
        "--stop-timeout", str(stop_timeout),
        "--host", host,
        "--csv", str(out / "locust"),
        "--json-file", str(out / "locust"),  # Locust appends ".json" itself
    ]  # fmt: skip


def run(
    name: str,
    host: str | None = None,
    users: int = 4,
    spawn_rate: float | None = None,
    seconds: int = 30,
    out: Path | None = None,
    policy: SloPolicy | None = None,
    weights: Mapping[str, int] | None = None,
    stop_timeout: int = 10,
    grace_s: float = 60.0,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run one scenario, killing Locust if it outlives run time + stop timeout + `grace_s`.

    `policy` defaults to the design documents' limits on this scenario's real-time endpoints."""
    sc = scenario(name)
    if users < 1 or seconds < 1:
        raise LoadTestError("users and seconds must be at least 1")
    out = Path(out) if out else default_out_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    policy = policy or SloPolicy(realtime=sc.realtime)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    if weights is not None:
        checked = parse_weights(",".join(f"{k}={v}" for k, v in weights.items()), sc.weights)
        env[WEIGHTS_ENV] = ",".join(f"{k}={v}" for k, v in checked.items())
    command = locust_command(sc, host or sc.default_host, users, spawn_rate or users, seconds, out, stop_timeout)
    log_file, json_file = out / "locust.log", out / "locust.json"
    json_file.unlink(missing_ok=True)  # never judge a previous run's numbers
    limit_s = seconds + stop_timeout + grace_s
    returncode = _run_bounded(command, env, log_file, limit_s, progress)
    if not json_file.exists():
        if returncode is None:
            raise LoadTestError(f"Locust ran past its hard limit of {limit_s:.0f} s and was killed; log: {log_file}")
        raise LoadTestError(f"Locust (exit {returncode}) wrote no {json_file.name}; its log:\n{_tail(log_file)}")
    # Locust writes the JSON as it shuts down: with it there, a kill only cut a hung exit short.
    report = check_file(json_file, policy)
    summary = {
        "scenario": name,
        "host": host or sc.default_host,
        "users": users,
        "seconds": seconds,
        "locust_exit_code": returncode,  # None: killed at the hard limit after writing its stats
        "passed": report.passed,
        "failed": [c.message for c in report.failed],
        **report.model_dump(mode="json"),
    }
    (out / "slo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return RunResult(name, out, json_file, out / "locust", log_file, returncode, report)


def _run_bounded(command: list[str], env: dict, log_file: Path, limit_s: float, progress) -> int | None:
    """The exit status, or None when the command outlived `limit_s` and was killed."""
    start = time.monotonic()
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            while True:
                try:
                    return proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    elapsed = time.monotonic() - start
                    if progress:
                        progress(elapsed)
                    if elapsed > limit_s:
                        _stop(proc)
                        return None
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): never leave Locust behind
                _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM then SIGKILL to the session this run started (Locust and nothing else)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
