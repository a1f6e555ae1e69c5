"""One benchmark run, in an order that keeps each measurement alone on the cores:
in-process limits and the judge's parts, then the naive baseline, then Triton (batching off and on),
then the gateway in front of that Triton with the caches off (Triton's response cache, and the
gateway's row cache: the stack's gateway runs without it), a second gateway without micro-batching
(caches off too), then the caches on (a Zipf chat stream: Triton reloaded with its response cache, and
a third gateway with its row cache at the default), then a cold `djserve serve` start."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Callable

from bentos.settings import GatewaySettings
from djserve.gateway import GatewayServer
from djserve.repository.layout import ModelRepository
from djserve.specs import EXPORTED
from djserve.stack import gateway_environment as stack_gateway_env
from loadtest.bench import http_load, judge_inprocess, limit, startup, triton_direct
from loadtest.bench.http_load import ENDPOINTS
from loadtest.bench.report import BenchReport, machine
from loadtest.bench.settings import BenchSettings
from djserve.process import free_port
from loadtest.bench.workloads import WORKLOADS
from loadtest.samples import click_wav

Step = Callable[[str], None]
CACHED_MODELS = [name for name, spec in EXPORTED.items() if spec.response_cache]
ROW_CACHE_OFF = {f"{GatewaySettings.model_config['env_prefix']}ROW_CACHE_ENTRIES": "0"}
"""The gateway's row cache (bentos.row_cache) off: the "cache off" figures must reach Triton."""


def _model_file(repository: Path, model: str) -> Path:
    repo = ModelRepository(repository)
    version = repo.latest(model)
    if version is None:
        raise FileNotFoundError(f"{model} has no exported version in {repository}: run `djserve export` first")
    return repo.model_dir(model) / str(version) / "model.onnx"


def run_bench(repository: Path, out: Path, cfg: BenchSettings, step: Step) -> BenchReport:
    out.mkdir(parents=True, exist_ok=True)
    workloads = [WORKLOADS[w] for w in cfg.workloads]
    clip = click_wav(cfg.judge_clip_seconds)

    limits = {}
    for w in workloads:
        if w.model not in limits:
            step(f"in-process limit: {w.model}")
            limits[w.model] = limit.measure_limit(w, _model_file(repository, w.model), cfg.limit_seconds, cfg.seed)
    step("judge parts in-process")
    parts = judge_inprocess.judge_parts(clip, {m: _model_file(repository, m) for m in judge_inprocess.MODELS}, cfg.limit_seconds * 3)

    naive_points = []
    from loadtest.bench.naive import NaiveServer

    step("naive baseline: starting")
    with NaiveServer(free_port(), out / "naive.log", cfg.seed) as naive:
        for name in cfg.gateway_endpoints:
            step(f"naive baseline: {name}")
            naive_points += asyncio.run(http_load.measure_endpoint(naive.url, "naive", ENDPOINTS[name], cfg.concurrencies, cfg.seconds, cfg.warmup_s))

    from djserve.stack import Stack

    with tempfile.TemporaryDirectory(prefix="djserve-bench-") as tmp:
        # Triton and the gateway start together (the gateway idles while Triton is measured alone).
        step("Triton and the gateway: starting")
        with Stack.local(repository, Path(tmp), gateway_env=ROW_CACHE_OFF, log_dir=out, log=step) as stack:
            triton = stack.tritons[0]
            triton_points = []
            for model in dict.fromkeys(w.model for w in workloads):
                for batching in ("off", "on"):
                    triton_direct.reload_model(triton.http_url, model, batching, cache=False, headers=triton.settings.admin_headers())
                    for w in (w for w in workloads if w.model == model):
                        step(f"Triton: {w.name}, batching {batching}")
                        triton_points += asyncio.run(
                            triton_direct.measure_model(triton.grpc_url, w, batching, cfg.concurrencies, cfg.seconds, cfg.warmup_s, cfg.seed)
                        )
            gw = stack.gateway
            gateway_points = []

            def measure(url: str, target: str, names: list[str]) -> None:
                for name in names:
                    step(f"{target}: {name}")
                    gateway_points.extend(asyncio.run(
                        http_load.measure_endpoint(url, target, ENDPOINTS[name], cfg.concurrencies, cfg.seconds, cfg.warmup_s)))

            def cache(on: bool) -> None:  # Triton's response cache of every model whose spec enables it
                for model in CACHED_MODELS:
                    triton_direct.reload_model(triton.http_url, model, "on", cache=on, headers=triton.settings.admin_headers())

            cache(False)
            measure(gw.url, "gateway", cfg.gateway_endpoints)
            if cfg.unbatched_endpoints:
                step("a second gateway without micro-batching: starting")
                env = stack_gateway_env(repository, Path(tmp)) | ROW_CACHE_OFF | {"DJSERVE_GATEWAY_MICRO_BATCHING": "false"}
                with GatewayServer(triton.grpc_url, out / "gateway-unbatched.log", port=free_port(), env=env) as unbatched:
                    measure(unbatched.url, "gateway_unbatched", cfg.unbatched_endpoints)
            if cfg.cached_endpoints:
                cache(True)
                step("a gateway with its row cache: starting")
                env = stack_gateway_env(repository, Path(tmp))
                with GatewayServer(triton.grpc_url, out / "gateway-cache.log", port=free_port(), env=env) as cached:
                    measure(cached.url, "gateway_cache", cfg.cached_endpoints)
            step(f"gateway: judge, {cfg.judge_clip_seconds:g} s clip")
            judge_e2e = asyncio.run(http_load.measure_judge(gw.url, "gateway", clip, 1, cfg.judge_seconds, cfg.warmup_s))
            live = []
            for streams in cfg.live_streams:
                step(f"gateway: live, {streams} streams")
                live.append(asyncio.run(http_load.measure_live(gw.url, streams, cfg.live_seconds)))

    started = None
    if cfg.startup:
        step("djserve serve: cold start")
        started = startup.measure_startup(repository)

    report = BenchReport(
        machine=machine(), settings=cfg.model_dump(), limits=limits, triton=triton_points, naive=naive_points,
        gateway=gateway_points, judge_parts=parts, judge_e2e=judge_e2e, live=live, startup=started,
    )
    report.compute(cfg.live_target_streams)
    return report
