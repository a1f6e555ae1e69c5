"""`djserve loadtest`: run a Locust scenario headless and judge it against the SLOs; `djserve soak`:
the gateway scenario for an hour with every stack process's memory sampled (loadtest.soak).

Registered in djserve/cli.py as `app.command("loadtest")(loadtest)` and `app.command("soak")(soak)`;
`loadtest` also runs alone:

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
from loadtest.soak import MiB, SoakReport, SoakSettings

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


def soak(
    host: Annotated[str, typer.Option(help="the gateway's URL (its port finds the gateway's processes)")] = "http://127.0.0.1:3000",
    triton: Annotated[Optional[str], typer.Option(help="Triton's gRPC host:port (default: the gateway worker's DJSERVE_GATEWAY_TRITON_URL)")] = None,
    users: Annotated[int, typer.Option("--users", "-u", min=1, help="simulated users")] = 4,
    minutes: Annotated[float, typer.Option(min=0.05, help="how long the load runs")] = 60.0,
    warmup_minutes: Annotated[float, typer.Option(min=0.0, help="growth is measured from the end of the warm-up")] = 10.0,
    sample_every: Annotated[float, typer.Option(min=0.5, help="seconds between two memory samples")] = 10.0,
    max_growth: Annotated[float, typer.Option(min=0.0001, help="allowed RSS growth of every gateway process after the warm-up (0.05 = 5%)")] = 0.05,
    out: Annotated[Optional[Path], typer.Option(help="output dir (default .djserve/soak/<timestamp>/)")] = None,
    p95_ms: Annotated[float, typer.Option(min=0.0, help="p95 limit of real-time endpoints, in ms (strictly below)")] = 100.0,
    max_failure_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="allowed failures / requests per endpoint")] = 0.0,
    weights: Annotated[Optional[str], typer.Option(help='task weights, e.g. "judge=1,sentiment=1" (0 switches a task off)')] = None,
) -> None:
    """Soak the running stack: the platform's Locust mix for --minutes while the memory of the gateway,
    Triton and its stubs is sampled; fails when a gateway process grows or an SLO breaks."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from loadtest.soak import SoakError, soak as run_soak

    duration = max(1, round(minutes * 60))
    try:
        sc = get_scenario("gateway")
        cfg = SoakSettings(
            host=host, triton=triton, users=users, duration_s=duration, warmup_s=warmup_minutes * 60,
            sample_every_s=sample_every, max_growth=max_growth, out=out,
            policy=SloPolicy(p95_ms=p95_ms, max_failure_rate=max_failure_rate, realtime=sc.realtime),
            weights=parse_weights(weights, sc.weights) if weights else None,
        )
        columns = (TextColumn("[bold]soak"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                   TimeElapsedColumn(), TextColumn("{task.fields[memory]}"))
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("soak", total=duration, memory="finding the stack's processes")

            def progress(elapsed: float, gateway_rss) -> None:
                warm = "warm-up, " if elapsed < cfg.warmup_s else ""
                memory = ", ".join(f"{label} {rss / MiB:.0f} MiB" for label, rss in sorted(gateway_rss.items()))
                bar.update(task, completed=elapsed, memory=f"{warm}{users} users; {memory}")

            report = run_soak(cfg, progress)
    except (SoakError, LoadTestError, ValueError) as exc:
        console.print(f"[red]soak failed:[/] {exc}")
        raise typer.Exit(1) from None
    show_soak(report)
    if not report.passed:
        for message in report.failed:
            console.print(f"[red]soak failed:[/] {message}")
        raise typer.Exit(1)
    console.print(f"[green]the soak holds[/]: no gateway process grew {max_growth:.0%} after the warm-up, every SLO held")


def show_soak(report: SoakReport) -> None:
    table = Table(title=f"Memory (RSS, MiB): start, end of the {report.settings.warmup_s / 60:g}-minute warm-up, end of the "
                        f"{report.duration_s / 60:.1f}-minute run")
    for column in ("process", "pid", "start", "warm", "end", "growth", "MiB/min", "judged"):
        table.add_column(column, justify="left" if column in ("process", "judged") else "right")
    for g in report.processes:
        table.add_row(
            g.label, str(g.pid), f"{g.start_rss / MiB:.0f}", "-" if g.base_rss is None else f"{g.base_rss / MiB:.0f}",
            f"{g.end_rss / MiB:.0f}", "-" if g.growth is None else f"{g.growth:+.1%}",
            "-" if g.slope_mib_per_min is None else f"{g.slope_mib_per_min:+.2f}", "yes" if g.judged else "",
        )  # fmt: skip
    console.print(table)
    for event in report.events:
        console.print(f"[yellow]{event}")
    if report.slo is not None:
        console.print(endpoint_table(report.slo))
        console.print(verdict_table(report.slo))
    checks = Table(title=f"Memory (every gateway process grows < {report.settings.max_growth:.0%} after the warm-up)")
    for column in ("check", "verdict"):
        checks.add_column(column)
    for c in report.memory_checks:
        checks.add_row(c.message, "[green]pass" if c.passed else "[red]FAIL")
    console.print(checks)
    console.print(f"{report.requests} requests, {report.failures} failures; results in {report.out_dir} "
                  "(memory.csv, soak.json, locust.json, slo.json, locust.log)")


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
