"""`djserve bench`: the benchmark as a command (registered in djserve/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(width=160)  # wide tables even when not on a terminal (CI logs)


def bench(
    repository: Annotated[Optional[Path], typer.Option(help="model repository with exported versions")] = None,
    out: Annotated[Optional[Path], typer.Option(help="where bench.json and latency.png go")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="every section once, seconds each: checks the script, not the figures")] = False,
    seconds: Annotated[Optional[float], typer.Option(help="measured seconds per load point")] = None,
    concurrencies: Annotated[Optional[str], typer.Option(help="e.g. 1,4,16")] = None,
    no_startup: Annotated[bool, typer.Option("--no-startup", help="skip the cold `djserve serve` start")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="exit 2 when a target is missed")] = False,
    profile: Annotated[str, typer.Option(help="reference: the exported models as they are; production: chat sentiment "
                                              "at XLM-R size (random weights) against the same naive baseline; sweep: "
                                              "Triton placements (instances x threads x queue delay) per model")] = "reference",
    size: Annotated[str, typer.Option(help="production profile: base (278M parameters) or large (560M)")] = "base",
) -> None:
    """Measure the in-process limit, Triton (batching on/off), the gateway and a naive baseline in one run."""
    from djserve.settings import settings
    from loadtest.bench.report import plot, print_report
    from loadtest.bench.run import run_bench
    from loadtest.bench.settings import BenchSettings, default_out_dir

    if profile == "production":
        return _production(repository, out, smoke, seconds, concurrencies, size)
    if profile == "sweep":
        return _sweep(repository, out, smoke, seconds)
    if profile != "reference":
        raise typer.BadParameter(f"unknown profile {profile!r}: reference, production or sweep", param_hint="--profile")
    cfg = BenchSettings.smoke() if smoke else BenchSettings()
    if seconds is not None:
        cfg.seconds = seconds
    if concurrencies:
        cfg.concurrencies = [int(c) for c in concurrencies.split(",")]
    if no_startup:
        cfg.startup = False
    project = settings()
    out = out or default_out_dir(project.state_dir)
    with console.status("benchmark") as status:
        report = run_bench((repository or project.repository).resolve(), out, cfg, lambda text: status.update(f"benchmark: {text}"))
    (out / "bench.json").write_text(report.model_dump_json(indent=2))
    plot(report, out / "latency.png")
    print_report(report, console)
    console.print(f"written: {out / 'bench.json'}, {out / 'latency.png'}")
    missed = [c.target for c in report.checks if not c.ok]
    if strict and missed:
        console.print("[red]missed:[/] " + "; ".join(missed))
        raise typer.Exit(2)


def _production(repository: Optional[Path], out: Optional[Path], smoke: bool, seconds: Optional[float],
                concurrencies: Optional[str], size: str) -> None:
    from djserve.settings import settings
    from exporters.architectures.sentiment import PRODUCTION_SIZES
    from loadtest.bench.production import ProductionSettings, print_production, run_production
    from loadtest.bench.settings import default_out_dir

    if size not in PRODUCTION_SIZES:
        raise typer.BadParameter(f"unknown size {size!r}: {', '.join(PRODUCTION_SIZES)}", param_hint="--size")
    cfg = ProductionSettings.smoke() if smoke else ProductionSettings(size=size)
    if seconds is not None:
        cfg.seconds = seconds
    if concurrencies:
        cfg.concurrencies = [int(c) for c in concurrencies.split(",")]
    project = settings()
    out = out or default_out_dir(project.state_dir)
    with console.status("production-size benchmark") as status:
        report = run_production((repository or project.repository).resolve(), out, cfg,
                                lambda text: status.update(f"production-size benchmark: {text}"))
    (out / "production.json").write_text(report.model_dump_json(indent=2))
    print_production(report, console)
    console.print(f"written: {out / 'production.json'}")


def _sweep(repository: Optional[Path], out: Optional[Path], smoke: bool, seconds: Optional[float]) -> None:
    import json

    from djserve.settings import settings
    from loadtest.bench.settings import default_out_dir
    from loadtest.bench.sweep import SweepGrid, print_sweeps, run_sweeps

    grid = SweepGrid(instances=[1], threads=[1, 2], delays_us=[0], concurrency=4, seconds=0.5, warmup_s=0.1) if smoke else SweepGrid()
    if seconds is not None:
        grid.seconds = seconds
    workloads = ["judge"] if smoke else ["judge", "sentiment", "recommender_pair", "recommender"]
    project = settings()
    out = out or default_out_dir(project.state_dir)
    with console.status("placement sweep") as status:
        sweeps = run_sweeps((repository or project.repository).resolve(), out, grid, workloads,
                            lambda text: status.update(f"placement sweep: {text}"))
    (out / "sweep.json").write_text(json.dumps({"grid": grid.model_dump(), "sweeps": [
        {**s.model_dump(), "chosen_over_spec": s.chosen_over_spec} for s in sweeps]}, indent=2))
    print_sweeps(sweeps, grid.concurrency, console)
    console.print(f"written: {out / 'sweep.json'}")
