"""`djserve loadtest`: run a Locust scenario headless and judge it against the SLOs.

Registered in djserve/cli.py as `app.command("loadtest")(loadtest)`; also runs alone:

    python -m loadtest.cli gateway --users 8 --seconds 30
    python -m loadtest.cli triton --host grpc://127.0.0.1:8001

Exit 0 when every SLO holds, 1 (naming each failed SLO) when one does not or the run broke.
Locust is never imported here: it runs as a subprocess (see loadtest.locust_run).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from loadtest.locust_run import LoadTestError, RunResult, parse_weights, run
from loadtest.locust_run import scenario as get_scenario
from loadtest.slo import SloPolicy, SloReport

console = Console(soft_wrap=True)


class ScenarioName(str, Enum):
    gateway = "gateway"
    triton = "triton"


def loadtest(
    scenario: Annotated[ScenarioName, typer.Argument(metavar="SCENARIO", help="gateway (HTTP API) or triton (models over gRPC)")],
    host: Annotated[Optional[str], typer.Option(help="target (default: gateway http://127.0.0.1:3000, triton 127.0.0.1:8001)")] = None,
    users: Annotated[int, typer.Option("--users", "-u", min=1, help="simulated users")] = 4,
    spawn_rate: Annotated[Optional[float], typer.Option("--spawn-rate", "-r", min=0.01, help="users started per second (default: all at once)")] = None,
    seconds: Annotated[int, typer.Option("--seconds", "-t", min=1, help="run time")] = 30,
    out: Annotated[Optional[Path], typer.Option(help="output dir (default .djserve/loadtest/<timestamp>-<scenario>/)")] = None,
    p95_ms: Annotated[float, typer.Option(min=0.0, help="p95 limit of real-time endpoints, in ms (strictly below)")] = 100.0,
    max_failure_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="allowed failures / requests per endpoint")] = 0.0,
    weights: Annotated[Optional[str], typer.Option(help='task weights, e.g. "judge=1,sentiment=1" (0 switches a task off)')] = None,
) -> None:
    """Load-test the gateway or Triton with Locust and check the SLOs (p95 < 100 ms live, no failures)."""
    name = scenario.value
    try:
        sc = get_scenario(name)
        task_weights = parse_weights(weights, sc.weights) if weights else None
        policy = SloPolicy(p95_ms=p95_ms, max_failure_rate=max_failure_rate, realtime=sc.realtime)
        target = host or sc.default_host
        with console.status(f"{name}: starting Locust against {target}") as status:

            def progress(elapsed: float) -> None:
                phase = "running" if elapsed <= seconds else "stopping"
                status.update(f"{name}: {phase}, {elapsed:.0f}/{seconds} s, {users} users against {target}")

            result = run(name, target, users, spawn_rate, seconds, out, policy, task_weights, progress=progress)
    except (LoadTestError, ValueError) as exc:
        console.print(f"[red]load test failed:[/] {exc}")
        raise typer.Exit(1) from None
    show(result)
    if not result.report.passed:
        for failed in result.report.failed:
            console.print(f"[red]SLO failed:[/] {failed.message}")
        raise typer.Exit(1)
    console.print(f"[green]every SLO holds[/] ({len(result.report.checks)} checks)")


def show(result: RunResult) -> None:
    console.print(endpoint_table(result.report))
    console.print(verdict_table(result.report))
    console.print(f"results in {result.out_dir} (locust.json, locust_stats.csv, slo.json, locust.log)")
    if result.returncode is None:
        console.print("[yellow]Locust hung after writing its stats and was killed at the hard limit")


def endpoint_table(report: SloReport) -> Table:
    table = Table(title="Endpoints (ms)")
    for column in ("endpoint", "requests", "failures", "p50", "p95", "p99", "mean"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for e in report.endpoints:
        table.add_row(
            f"{e.method} {e.name}", str(e.requests), str(e.failures),
            f"{e.p50_ms:g}", f"{e.p95_ms:g}", f"{e.p99_ms:g}", f"{e.mean_ms:.1f}",
        )  # fmt: skip
    return table


def verdict_table(report: SloReport) -> Table:
    table = Table(title=f"SLOs (p95 < {report.policy.p95_ms:g} ms on real-time endpoints, failure rate <= {report.policy.max_failure_rate:g})")
    for column in ("check", "verdict"):
        table.add_column(column)
    for c in report.checks:
        table.add_row(c.message, "[green]pass" if c.passed else "[red]FAIL")
    return table


def main() -> None:
    typer.run(loadtest)


if __name__ == "__main__":
    main()
