"""`djserve`: export models into the Triton repository and run the embedded Triton."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from djserve.quiet import quiet_frameworks
from djserve.settings import settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True, soft_wrap=True)

class _LogStatus:
    """`console.status` for a log file or CI: a spinner redraws nothing there, so print the step at
    most every `every_s` seconds (a 20-minute training run is not silent)."""

    def __init__(self, text: str, every_s: float = 15.0) -> None:
        self.every_s, self.last = every_s, 0.0
        self.update(text)

    def update(self, text: str) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            console.print(text, markup=False, highlight=False)


def _status(text: str):
    if console.is_terminal:
        return console.status(text)
    from contextlib import nullcontext

    return nullcontext(_LogStatus(text))


RepositoryOpt = Annotated[
    Optional[Path], typer.Option("--repository", "-r", help="Triton model repository (default: DJSERVE_REPOSITORY or ./model_repository)")
]


@app.command()
def export(
    models: Annotated[Optional[list[str]], typer.Argument(help="models to export (default: all)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="weights: torch state_dict, .keras file or HF directory (one model only)")] = None,
    repository: RepositoryOpt = None,
    tolerance: Annotated[float, typer.Option(help="max abs ONNX-vs-source difference")] = 1e-4,
    seed: Annotated[int, typer.Option(help="seed of the reference weights when no checkpoint is given")] = 0,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="skip models that already have a version")] = False,
    register: Annotated[bool, typer.Option(help="log the checkpoint to MLflow and register a model version")] = True,
    quantize: Annotated[Optional[str], typer.Option(help="int8: an INT8 version, accepted on the held-out metric (not registered)")] = None,
    profile: Annotated[str, typer.Option(help="with --quantize: the held-out data it is judged on (reference or quick)")] = "reference",
) -> None:
    """Export models to ONNX as NEW numbered versions, after a numerical parity check (or, with
    --quantize int8, a held-out check: at most 1 point of accuracy or 0.01 of R^2 lost)."""
    quiet_frameworks()
    from djserve.repository import ModelRepository
    from djserve.specs import EXPORTED
    from djserve.mlops.publish import export_and_register
    from exporters.errors import ExportError
    from exporters.isolated import export_isolated

    repo_path = repository or settings().repository
    names = models or list(EXPORTED)
    unknown = [n for n in names if n not in EXPORTED]
    if unknown:
        _fail(f"unknown model(s) {', '.join(unknown)}; exportable: {', '.join(EXPORTED)}")
    if checkpoint is not None and len(names) != 1:
        _fail("--checkpoint needs exactly one model")
    if quantize is not None:
        if quantize != "int8":
            _fail(f"unknown --quantize {quantize!r}; known: int8")
        return _export_int8(names, repo_path, checkpoint, profile, seed, tolerance)
    if if_missing:
        names = [n for n in names if not ModelRepository(repo_path).versions(n)]
        if not names:
            console.print(f"[green]every model already has a version in {repo_path}")
            return
    for i, name in enumerate(names, 1):
        with _status(f"[{i}/{len(names)}] {name}: starting") as status:
            def show(step: str, name=name, i=i) -> None:
                status.update(f"[{i}/{len(names)}] {name}: {step}")

            try:
                if register:
                    result = export_and_register(name, repo_path, settings().state_dir, checkpoint, show,
                                                 tolerance=tolerance, seed=seed)
                else:
                    result = export_isolated(name, repo_path, checkpoint, tolerance, seed, progress=show)
            except ExportError as exc:
                _fail(str(exc))
        worst = max(result.max_abs_diff.values(), default=0.0)
        registered = f", registered as {result.registry_uri}" if result.registry_uri else ""
        console.print(f"[green]✓[/] {name} -> {result.path} (parity max abs diff {worst:.1e}{registered})")


def _export_int8(names: list[str], repo_path: Path, checkpoint: Path | None, profile: str, seed: int, tolerance: float) -> None:
    from djserve.mlops.quantize import export_int8
    from exporters.errors import ExportError

    for i, name in enumerate(names, 1):
        with _status(f"[{i}/{len(names)}] {name} (INT8): starting") as status:
            try:
                result, q = export_int8(name, repo_path, _graph_evaluator, checkpoint, profile=profile, seed=seed,
                                        tolerance=tolerance, progress=lambda step, name=name: status.update(f"{name} (INT8): {step}"))
            except ExportError as exc:
                _fail(str(exc))
        console.print(f"[green]✓[/] {name} -> {result.path} (INT8: held-out {q.headline} {q.fp32:.4f} -> {q.int8:.4f}, "
                      f"loss {q.loss:+.4f} <= {q.max_loss:g}; {q.fp32_bytes / 2**20:.1f} -> {q.int8_bytes / 2**20:.1f} MiB)")


TrainModels = Annotated[list[str], typer.Argument(help="models to train, or `all`")]
ProfileOpt = Annotated[str, typer.Option(help="reference (what `make serve` serves) or quick (small, for tests)")]


@app.command()
def train(
    models: TrainModels,
    profile: ProfileOpt = "reference",
    seed: Annotated[int, typer.Option(help="training seed (initialisation, sampling, order); the data is fixed per profile")] = 0,
    epochs: Annotated[Optional[int], typer.Option(help="override the profile's epoch count")] = None,
    shuffle_labels: Annotated[bool, typer.Option("--shuffle-labels", help="control run on permuted labels (must score near chance)")] = False,
    dataset: Annotated[Optional[Path], typer.Option(help="a dataset folder to train on instead of the profile's cached one")] = None,
    export: Annotated[bool, typer.Option("--export", help="also export the trained version as a new Triton version")] = False,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="only models without a version in the repository")] = False,
    repository: RepositoryOpt = None,
) -> None:
    """Train models on the project's generated data, evaluate them on held-out data, log each run
    to MLflow and register a model version carrying its held-out metrics."""
    quiet_frameworks()
    from djserve.repository import ModelRepository
    from training.errors import TrainingError
    from training.run import FAMILIES, train_isolated

    names = list(FAMILIES) if models == ["all"] else models
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        _fail(f"unknown model(s) {', '.join(unknown)}; trainable: {', '.join(FAMILIES)} (or all)")
    repo_path = repository or settings().repository
    if if_missing:
        names = [n for n in names if not ModelRepository(repo_path).versions(n)]
        if not names:
            console.print(f"[green]every model already has a version in {repo_path}")
            return
    state = settings().state_dir
    for i, name in enumerate(names, 1):
        started = time.monotonic()
        with _status(f"[{i}/{len(names)}] {name}: starting") as status:
            def show(step: str, name=name, i=i) -> None:
                status.update(f"[{i}/{len(names)}] {name} ({time.monotonic() - started:.0f} s): {step}")

            try:
                result = train_isolated(name, state, show, profile=profile, seed=seed, epochs=epochs,
                                        shuffle_labels=shuffle_labels, dataset=dataset)
            except TrainingError as exc:
                _fail(str(exc))
            _print_rows(f"{name}: held-out ({profile})", result.rows)
            exported = ""
            if export:
                from djserve.mlops.publish import export_registered
                from exporters.errors import ExportError

                try:
                    out = export_registered(result.registry_uri, repo_path, state, progress=show)
                except ExportError as exc:
                    _fail(str(exc))
                exported = f", exported as {out.path}"
        console.print(
            f"[green]✓[/] {name}: {result.headline} {result.metrics[result.headline]:.3f} in {result.total_seconds:.0f} s "
            f"(fit {result.fit_seconds:.0f} s), registered as {result.registry_uri}{exported}"
        )


@app.command()
def evaluate(
    model: Annotated[str, typer.Argument(help="model family")],
    version: Annotated[Optional[int], typer.Option(help="registered version (default: the champion)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="a checkpoint file or folder instead of a registered version")] = None,
    profile: ProfileOpt = "reference",
    dataset: Annotated[Optional[Path], typer.Option(help="a dataset folder instead of the profile's")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Score a registered version or a checkpoint on the held-out data; logged to MLflow."""
    quiet_frameworks()
    import json

    from training.base import MetricRow
    from training.errors import TrainingError
    from training.run import evaluate_isolated

    if version is not None and checkpoint is not None:
        _fail("give --version or --checkpoint, not both")
    with _status(f"{model}: evaluating") as status:
        try:
            out = evaluate_isolated(model, settings().state_dir, lambda step: status.update(f"{model}: {step}"),
                                    profile=profile, version=version, checkpoint=checkpoint, dataset=dataset)
        except TrainingError as exc:
            _fail(str(exc))
    if as_json:
        print(json.dumps({k: v for k, v in out.items() if k != "extra"}, indent=2))
        return
    _print_rows(f"{model}: {out['evaluated']} on held-out data ({profile}); MLflow run {out['run_id']}",
                [MetricRow(**r) for r in out["rows"]])


def _print_rows(title: str, rows) -> None:
    from rich.table import Table

    baselines = sorted({b for r in rows for b in r.baselines})
    table = Table("subset", "metric", "model", *baselines, title=title, title_justify="left")
    for r in rows:
        table.add_row(r.subset, r.metric, f"{r.model:.3f}", *(f"{r.baselines[b]:.3f}" if b in r.baselines else "" for b in baselines))
    Console(stderr=True).print(table)


@app.command()
def configs(
    repository: RepositoryOpt = None,
    check: Annotated[bool, typer.Option("--check", help="only verify; exit 1 if a config differs from its spec")] = False,
) -> None:
    """Write (or check) every model's config.pbtxt from its spec."""
    from djserve.repository import ModelRepository, render_config
    from djserve.specs import ALL

    repo = ModelRepository(repository or settings().repository)
    stale = []
    for spec in ALL.values():
        path = repo.model_dir(spec.name) / "config.pbtxt"
        if check:
            if not path.exists() or path.read_text() != render_config(spec):
                stale.append(str(path))
        else:
            repo.write_config(spec)
    if stale:
        _fail("config.pbtxt out of date with the specs (run `djserve configs`): " + ", ".join(stale))
    console.print(f"[green]✓[/] {len(ALL)} configs {'match their specs' if check else 'written'} in {repo.root}")


@app.command()
def models(markdown: Annotated[bool, typer.Option("--markdown", help="print the README's model table")] = False) -> None:
    """The model contracts: every Triton model's inputs, outputs and batching, from the specs."""
    from djserve.specs import ALL

    rows = [("model", "kind", "inputs", "outputs", "max batch")]
    for spec in ALL.values():
        rows.append((
            f"`{spec.name}`",
            spec.framework,
            ", ".join(_tensor(t) for t in spec.inputs),
            ", ".join(_tensor(t) for t in spec.outputs),
            str(spec.batching.max_batch_size),
        ))
    if markdown:
        print("| " + " | ".join(rows[0]) + " |\n|" + " --- |" * len(rows[0]))
        for row in rows[1:]:
            print("| " + " | ".join(row) + " |")
        return
    from rich.table import Table

    table = Table(*rows[0])
    for row in rows[1:]:
        table.add_row(*(c.replace("`", "") for c in row))
    Console().print(table)


def _tensor(t) -> str:
    dims = ",".join(str(d) for d in ("B", *t.dims))
    return f"{t.name} {t.dtype}[{dims}]"


@app.command()
def triton(
    repository: RepositoryOpt = None,
    host: Annotated[Optional[str], typer.Option(help="bind address (default 127.0.0.1: loopback only)")] = None,
    http_port: Annotated[Optional[int], typer.Option()] = None,
    grpc_port: Annotated[Optional[int], typer.Option()] = None,
    metrics_port: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Run the real tritonserver on the repository in the foreground (all models loaded)."""
    from djserve.triton import TritonError, TritonServer

    try:
        server_settings = _triton_settings(settings(), repository, host, http_port, grpc_port, metrics_port)
        raise typer.Exit(TritonServer(server_settings).run_foreground())
    except TritonError as exc:
        _fail(str(exc))


@app.command()
def serve(
    repository: RepositoryOpt = None,
    host: Annotated[str, typer.Option(help="bind address of Triton and the gateway (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="gateway HTTP port")] = 3000,
    http_port: Annotated[Optional[int], typer.Option(help="Triton HTTP port")] = None,
    grpc_port: Annotated[Optional[int], typer.Option(help="Triton gRPC port")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(help="Triton metrics port")] = None,
    replicas: Annotated[int, typer.Option(min=1, max=8, help="Triton replicas (the first on the given ports, "
                                          "the others on free ones); the gateway spreads calls over them")] = 1,
) -> None:
    """Run Triton and the BentoML gateway together until Ctrl-C/SIGTERM, restarting a child that dies."""
    import signal
    import threading

    from pydantic import ValidationError

    from djserve.mlops.promotion import PromotionError
    from djserve.process import ProcessStartError, free_port
    from djserve.stack import ChildCrashLoop, Stack
    from djserve.triton import TritonError

    cfg = settings()
    base = _triton_settings(cfg, repository, host, http_port, grpc_port, metrics_port)
    ports = [(base.http_port, base.grpc_port, base.metrics_port)] + \
            [(free_port(), free_port(), free_port()) for _ in range(replicas - 1)]
    try:
        # With DJSERVE_TRITON_ADMIN_KEY set, Triton restricts model control to that key; the promoter's
        # restore() reads the same variable. The gateway needs no key (and is not given it).
        stack = Stack.local(
            repository or cfg.repository, cfg.state_dir, replicas=replicas, host=host, triton_ports=ports,
            gateway_ports=[port], admin_token=_admin_token(cfg.state_dir),
            # after every (re)start: the versions and shares of the traffic policy, not the repository's newest
            on_triton_ready=lambda triton: _promoter(triton.http_url).restore(),
            log=lambda line: console.print(line, highlight=False),
        )
    except ValidationError as exc:  # its message never echoes the input (hide_input_in_errors)
        _fail(str(exc))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        with console.status(f"starting Triton ({replicas} replica(s), all models) and the gateway (librosa warm-up)"):
            stack.start()
        tritons = "; ".join(f"Triton gRPC {t.grpc_url}, HTTP {t.http_url}, metrics {t.metrics_url}" for t in stack.tritons)
        console.print(f"[green]ready[/] in {time.monotonic() - started:.1f} s: gateway {stack.gateway.url}  {tritons}")
        console.print(f"logs in {cfg.state_dir / 'logs'}; Ctrl-C to stop")
        stack.supervise(stop)
        console.print("stopping the gateway, then Triton")
    except ChildCrashLoop as exc:
        _fail(f"{exc}; stopping")
    except (TritonError, ProcessStartError, PromotionError) as exc:
        _fail(str(exc))
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _admin_token(state_dir: Path) -> str:
    """DJSERVE_ADMIN_TOKEN, else the token kept in `<state>/admin_token` (made once, owner-only), so
    `djserve promote`/`canary`/`status` on this machine reach the gateway's /admin routes."""
    import os
    import secrets

    from djserve.api import ADMIN_TOKEN_ENV
    from djserve.mlops.promotion import ADMIN_TOKEN_FILE

    if token := os.environ.get(ADMIN_TOKEN_ENV):
        return token
    path = state_dir / ADMIN_TOKEN_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _triton_settings(cfg, repository, host, http_port, grpc_port, metrics_port):
    from pydantic import ValidationError

    from djserve.triton import TritonSettings

    overrides = {"host": host, "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    try:  # DJSERVE_TRITON_* (the admin key among them) come from the environment
        return TritonSettings(
            model_repository=repository or cfg.repository,
            backend_dir=cfg.state_dir / "backends",
            log_file=cfg.state_dir / "logs" / "tritonserver.log",
            **{k: v for k, v in overrides.items() if v is not None},
        )
    except ValidationError as exc:  # its message never echoes the input (hide_input_in_errors)
        _fail(str(exc))


def _promoter(triton_http_url: str | None = None):
    from djserve.mlops.promotion import Promoter, PromotionSettings

    from pydantic import ValidationError

    try:
        promo = PromotionSettings(**({"triton_http_url": triton_http_url} if triton_http_url else {}))
    except ValidationError as exc:  # e.g. a malformed admin key; the message never echoes it
        _fail(f"promotion settings: {exc.errors()[0]['msg']}")
    return Promoter(settings(), promo, log=lambda line: console.print(line, highlight=False), evaluator=_evaluator,
                    graph_evaluator=_graph_evaluator)


def _evaluator(family: str, version: int, profile: str) -> dict:
    """The offline gate's scorer: training's held-out evaluation of a registered version (a fresh
    process, logged as an MLflow `evaluate` run)."""
    from training.run import evaluate_isolated

    return evaluate_isolated(family, settings().state_dir, profile=profile, version=version)


def _graph_evaluator(family: str, checkpoint: Path, graph: Path, profile: str) -> dict:
    """INT8 acceptance's scorer: training's held-out evaluation of an exported graph of the checkpoint."""
    from training.run import evaluate_isolated

    return evaluate_isolated(family, settings().state_dir, profile=profile, checkpoint=checkpoint, onnx_model=graph)


Family = Annotated[str, typer.Argument(help="model family: judge, technical, creative, beat_tracker, sentiment, recommender")]


@app.command()
def promote(
    family: Family,
    source: Annotated[Optional[str], typer.Option("--from", help="models:/NAME/VERSION or models:/NAME@alias")] = None,
    canary: Annotated[float, typer.Option("--canary", min=0, max=100, help="canary share in percent")] = 10.0,
    shadow: Annotated[Optional[float], typer.Option("--shadow", min=0, max=100, help="mirror this share of requests to it instead of a canary")] = None,
    complete: Annotated[bool, typer.Option("--complete", help="move 100% to the challenger and make it champion")] = False,
    force: Annotated[bool, typer.Option("--force", help="promote even if the offline gate refuses it (recorded)")] = False,
    min_improvement: Annotated[Optional[float], typer.Option(help="require this relative gain over the champion, e.g. 0.05")] = None,
    tolerance: Annotated[float, typer.Option(help="parity tolerance of the export")] = 1e-4,
    quantize: Annotated[Optional[str], typer.Option(help="int8: export it as an INT8 version, accepted on the held-out metric")] = None,
) -> None:
    """Gate a registry version offline, export it as a new Triton version, give it a shadow or canary share."""
    from djserve.mlops.promotion import PromotionError

    try:
        if complete:
            _promoter().complete(family)
        elif source is None:
            _fail("give --from models:/NAME/VERSION (or --complete)")
        else:
            _promoter().promote(family, source, canary, tolerance, shadow_percent=shadow, force=force,
                                min_improvement=min_improvement, quantize=quantize)
    except (PromotionError, ValueError, KeyError) as exc:
        _fail(str(exc))


@app.command()
def canary(
    family: Family,
    percent: Annotated[Optional[float], typer.Option("--percent", min=0, max=100)] = None,
    watch: Annotated[bool, typer.Option("--watch", help="ramp through the steps while the gates pass, else roll back")] = False,
    steps: Annotated[Optional[str], typer.Option(help="ramp steps for --watch, e.g. 10,50,100")] = None,
) -> None:
    """Change the canary's share, or ramp it under the gates (--watch)."""
    from djserve.mlops.promotion import PromotionError

    try:
        if watch:
            outcome = _promoter().watch(family, [float(x) for x in steps.split(",")] if steps else None)
            console.print(f"{family}: {outcome}")
            if outcome != "completed":
                raise typer.Exit(2)
        elif percent is not None:
            _promoter().set_canary(family, percent)
        else:
            _fail("give --percent P or --watch")
    except (PromotionError, KeyError) as exc:
        _fail(str(exc))


@app.command()
def rollback(family: Family, reason: Annotated[str, typer.Option()] = "manual") -> None:
    """Send 100% back to the previous champion at once and unload the failed version."""
    from djserve.mlops.promotion import PromotionError

    try:
        _promoter().rollback(family, reason)
    except (PromotionError, KeyError) as exc:
        _fail(str(exc))


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per model family: versions loaded, shares, shadow comparison, registry aliases, the latest gates."""
    import json

    from rich.table import Table

    rows = _promoter().status()
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table("family", "registered", "loaded", "shares", "shadow", "aliases", "offline gate", "last gate")
    for r in rows:
        table.add_row(
            r["family"],
            r["registered_model"],
            "Triton down" if r["loaded"] is None else _versions(r["loaded"]),
            ", ".join(f"v{v}: {p:g}%" for v, p in r["shares"].items()),
            _shadow_cell(r["shadow"]),
            ", ".join(f"{a}=v{v}" for a, v in r["aliases"].items()) or "-",
            _gate_cell(r["last_offline_gate"]),
            _gate_cell(r["last_gate"]),
        )
    Console().print(table)


def _shadow_cell(shadow: dict | None) -> str:
    if not shadow:
        return "-"
    live = shadow.get("live") or {}
    agreement = live.get("agreement")
    return (f"v{shadow['version']} {shadow['percent']:g}%: {live.get('pairs', 0)} pairs, agreement "
            f"{'-' if agreement is None else f'{agreement:.2f}'}, dropped {live.get('dropped_total', 0)}")


def _gate_cell(gate: dict | None) -> str:
    return "-" if not gate else f"{gate.get('verdict')} {gate.get('time', '')[:19]}"


def _versions(loaded: list[int] | dict[str, list[int]]) -> str:
    """`v1, v2`, or per replica when they disagree (the one a fenced step would refuse to move past)."""
    if isinstance(loaded, dict):
        return "[red]replicas differ:[/] " + "; ".join(f"{url} {_versions(v)}" for url, v in loaded.items())
    return ", ".join(f"v{v}" for v in loaded)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


# Load tests and the benchmark live in loadtest/; their commands are registered here.
from loadtest.bench.cli import bench  # noqa: E402
from loadtest.cli import loadtest, soak  # noqa: E402

app.command("bench")(bench)
app.command("loadtest")(loadtest)
app.command("soak")(soak)

if __name__ == "__main__":
    app()
