"""The production-size profile: chat sentiment at XLM-R base (or large) dimensions, seeded random
weights, served by the same stack and the same naive baseline as the reference sizes.

The reference sentiment model is tiny (2 layers, hidden 64), so its serving cost is all overhead;
production's is the encoder's FLOPs. Nothing is downloaded: the architecture is built from its
published dimensions (`exporters.architectures.sentiment.PRODUCTION_SIZES`). The DJ-set models
(judge, technical) already run at the design's sizes in every `djserve bench`.

One run, in this order so each measurement has the cores alone:
1. export the checkpoint as a new sentiment version of a copy of the reference repository;
2. in process: the ONNX Runtime limit per batch size (FP32), and INT8 (dynamic quantization of the
   same graph) against FP32 at batch 8, with the two graphs' agreement on the chat lines;
3. the naive baseline serving the same checkpoint with eager torch;
4. Triton: a sweep of instances x intra-op threads x queue delay picks the placement; dynamic
   batching on / off at that placement;
5. the gateway in front of that Triton (both caches off): single messages and chat batches;
6. the INT8 graph written as the next version and served the same way.

A random model's held-out accuracy is chance, so INT8 is judged here by its agreement with FP32 on
real chat lines; the accuracy bound itself is checked on trained models (`djserve export --quantize`).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel

from djserve.process import free_port
from djserve.repository.layout import ModelRepository
from loadtest.bench import http_load, triton_direct
from loadtest.bench.http_load import EndpointPoint
from djserve.mlops.quantize import quantize_int8, write_int8_version
from loadtest.bench.limit import ModelLimit, measure_limit, session, time_runs
from loadtest.bench.report import machine
from loadtest.bench.run import ROW_CACHE_OFF
from loadtest.bench.sweep import SweepGrid, SweepPoint, sweep_model
from loadtest.bench.triton_direct import Placement, TritonPoint
from loadtest.bench.workloads import Workload

Step = Callable[[str], None]
MODEL = "sentiment"
INT8_BATCH = 8
"""The chat batch endpoint's size: where INT8 is compared with FP32."""
CHAT_TOKENS = 16
"""Every load in this profile is chat lines of at most 16 tokens (the gateway pads them to its
16-token bucket), and the in-process and Triton-direct figures use the same shape, so the limit the
gateway is compared with is the limit of what it sends."""
SINGLE = Workload("sentiment", MODEL, 1, {"tokens": CHAT_TOKENS}, "one chat message, 16-token bucket")
BATCH8 = Workload("sentiment_x8", MODEL, INT8_BATCH, {"tokens": CHAT_TOKENS}, "eight chat messages, 16-token bucket")


def _short_lines() -> list[str]:
    from exporters.architectures.sentiment import build_tokenizer
    from loadtest.samples import CHAT_LINES

    tokenizer = build_tokenizer()  # the reference vocabulary: the one every profile's checkpoint carries
    return [line for line in CHAT_LINES if len(tokenizer(line)["input_ids"]) <= CHAT_TOKENS]


def endpoints() -> dict[str, http_load.Endpoint]:
    """The gateway's chat endpoints with short chat lines only (the same bodies for the naive service)."""
    from djserve import api

    lines = _short_lines()
    one = lambda i: {"text": lines[i % len(lines)], "language": "en"}  # noqa: E731
    return {
        "sentiment": http_load.Endpoint("sentiment", api.SENTIMENT_ROUTE, one, "sentiment"),
        "sentiment_batch": http_load.Endpoint("sentiment_batch", api.SENTIMENT_BATCH_ROUTE,
                                              lambda i: {"messages": [one(i + k) for k in range(INT8_BATCH)]}, "results", rows=INT8_BATCH),
    }


class ProductionSettings(BaseModel):
    size: str = "base"
    seed: int = 0
    concurrencies: list[int] = [1, 16]
    seconds: float = 8.0
    warmup_s: float = 2.0
    limit_seconds: float = 2.0
    instances: list[int] = [1, 2]
    threads: list[int] = [1, 2]
    delays_us: list[int] = [0, 2000]
    sweep_concurrency: int = 16

    @classmethod
    def smoke(cls) -> "ProductionSettings":
        """The reference size and one placement each way: checks the script, not the figures."""
        return cls(size="reference", concurrencies=[2], seconds=1.0, warmup_s=0.2, limit_seconds=0.1,
                   instances=[1], threads=[1, 2], delays_us=[0], sweep_concurrency=4)


class Int8Figures(BaseModel):
    batch: int
    fp32_rows_per_s: float
    int8_rows_per_s: float
    speedup: float
    agreement: float
    """Share of chat lines whose label is the same under both graphs."""
    max_abs_diff: float
    fp32_mb: float
    int8_mb: float


class ProductionReport(BaseModel):
    machine: dict
    settings: ProductionSettings
    parameters_m: float
    export_s: float
    limit: ModelLimit
    int8: Int8Figures
    sweep: list[SweepPoint]
    chosen: Placement
    triton: list[TritonPoint]
    naive: list[EndpointPoint]
    gateway: list[EndpointPoint]
    ratios: dict[str, float | None] = {}

    def compute(self) -> None:
        top = max(self.settings.concurrencies)

        def at(points, **match):
            return next((p for p in points if p.concurrency == top and all(getattr(p, k) == v for k, v in match.items())), None)

        r: dict[str, float | None] = {}
        batch1 = self.limit.points[0].rows_per_s
        r["limit_best_over_batch1"] = round(self.limit.rows_per_s / batch1, 3)
        for w in ("sentiment", "sentiment_x8"):
            on, off = at(self.triton, workload=w, batching="on"), at(self.triton, workload=w, batching="off")
            r[f"batching_on_over_off.{w}"] = round(on.items_per_s / off.items_per_s, 3) if on and off and off.items_per_s else None
        r["int8_over_fp32.batch8"] = self.int8.speedup
        for e in ("sentiment", "sentiment_batch"):
            n = at(self.naive, endpoint=e)
            for target, name in (("gateway", "stack_over_naive"), ("gateway_int8", "stack_int8_over_naive")):
                g = at(self.gateway, endpoint=e, target=target)
                # at equal or lower p95 (0 where the stack's p95 is worse)
                r[f"{name}.{e}"] = (round(g.throughput / n.throughput, 3) if g.p95_ms <= n.p95_ms else 0.0) if g and n and n.throughput else None
            g = at(self.gateway, endpoint=e, target="gateway")
            r[f"gateway_over_limit.{e}"] = round(g.items_per_s / self.limit.rows_per_s, 3) if g else None
            r[f"naive_over_limit.{e}"] = round(n.items_per_s / self.limit.rows_per_s, 3) if n else None
        self.ratios = r


def _measure_int8(fp32: Path, work: Path, seconds: float, seed: int) -> tuple[Path, Int8Figures]:
    from exporters.architectures.sentiment import build_tokenizer
    from loadtest.samples import CHAT_LINES

    int8 = quantize_int8(fp32, work / "int8" / "model.onnx")
    fp32_sess, int8_sess = session(fp32, 2), session(int8, 2)
    feeds = BATCH8.request(np.random.default_rng(seed))
    # Interleaved repeats, each graph's best: another process's burst must not land on one graph only.
    fp32_s, int8_s = [], []
    for _ in range(3):
        fp32_s.append(time_runs(lambda: fp32_sess.run(None, feeds), seconds))
        int8_s.append(time_runs(lambda: int8_sess.run(None, feeds), seconds))
    tokens = build_tokenizer()(list(CHAT_LINES), padding="max_length", truncation=True, max_length=32, return_tensors="np")
    chat = {"input_ids": tokens["input_ids"].astype(np.int64), "attention_mask": tokens["attention_mask"].astype(np.int64)}
    a, b = fp32_sess.run(None, chat)[0], int8_sess.run(None, chat)[0]
    mb = lambda p: sum(f.stat().st_size for f in p.parent.iterdir() if f.name.startswith("model.onnx")) / 2**20  # noqa: E731
    fp32_rows, int8_rows = INT8_BATCH / min(fp32_s), INT8_BATCH / min(int8_s)
    return int8, Int8Figures(
        batch=INT8_BATCH, fp32_rows_per_s=round(fp32_rows, 2), int8_rows_per_s=round(int8_rows, 2),
        speedup=round(int8_rows / fp32_rows, 3), agreement=round(float((a.argmax(1) == b.argmax(1)).mean()), 4),
        max_abs_diff=round(float(np.abs(a - b).max()), 5), fp32_mb=round(mb(fp32), 1), int8_mb=round(mb(int8), 1),
    )


def _checkpoint(target: Path, size: str, seed: int) -> tuple[Path, float]:
    """The HF directory and its parameter count in millions (read from the safetensors headers)."""
    from safetensors import safe_open

    from exporters.architectures import sentiment

    if size == "reference":
        path = sentiment.build_reference_checkpoint(target, seed)
    else:
        path = sentiment.build_production_checkpoint(target, size, seed)
    total = 0
    for weights in path.glob("*.safetensors"):
        with safe_open(str(weights), "np") as f:
            total += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    return path, round(total / 1e6, 1)


def run_production(reference: Path, out: Path, cfg: ProductionSettings, step: Step) -> ProductionReport:
    from djserve.stack import Stack
    from exporters.export import export_model
    from loadtest.bench.naive import NaiveServer

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="djserve-production-") as tmp:
        work = Path(tmp)
        step(f"building xlm-roberta-{cfg.size} with seeded random weights")
        ckpt, params_m = _checkpoint(work / "checkpoint", cfg.size, cfg.seed)
        repository = work / "model_repository"
        shutil.copytree(reference, repository)
        t0 = time.perf_counter()
        export_model(MODEL, repository, checkpoint=ckpt, progress=lambda s: step(f"export: {s}"))
        export_s = round(time.perf_counter() - t0, 1)
        version = ModelRepository(repository).latest(MODEL)
        fp32 = ModelRepository(repository).model_dir(MODEL) / str(version) / "model.onnx"

        step("in-process limit (FP32)")
        limit = measure_limit(SINGLE, fp32, cfg.limit_seconds, cfg.seed)
        step("INT8 against FP32, batch 8")
        int8_file, int8 = _measure_int8(fp32, work, cfg.limit_seconds, cfg.seed)
        chat = endpoints()

        naive_points: list[EndpointPoint] = []
        step("naive baseline: starting")
        with NaiveServer(free_port(), out / "naive.log", cfg.seed, sentiment_checkpoint=ckpt) as naive:
            for name in ("sentiment", "sentiment_batch"):
                step(f"naive baseline: {name}")
                naive_points += asyncio.run(http_load.measure_endpoint(
                    naive.url, "naive", chat[name], cfg.concurrencies, cfg.seconds, cfg.warmup_s))

        step("Triton and the gateway: starting")
        # The row cache would answer the load's repeated chat lines without the model.
        with Stack.local(repository, work / "state", log_dir=out, log=step, gateway_env=ROW_CACHE_OFF) as stack:
            triton = stack.tritons[0]
            admin = triton.settings.admin_headers()

            def measure(w: Workload, batching: str, placement: Placement, concurrencies: list[int]) -> list[TritonPoint]:
                triton_direct.reload_model(triton.http_url, MODEL, batching, cache=False, headers=admin, placement=placement)
                return asyncio.run(triton_direct.measure_model(
                    triton.grpc_url, w, batching, concurrencies, cfg.seconds, cfg.warmup_s, cfg.seed))

            grid = SweepGrid(instances=cfg.instances, threads=cfg.threads, delays_us=cfg.delays_us,
                             concurrency=cfg.sweep_concurrency, seconds=cfg.seconds, warmup_s=cfg.warmup_s)
            swept = sweep_model(triton, SINGLE, grid, step, cfg.seed)
            sweep, chosen = swept.points, swept.chosen

            triton_points = []
            for w in (SINGLE, BATCH8):
                for batching in ("off", "on"):
                    step(f"Triton at the chosen placement: {w.name}, batching {batching}")
                    triton_points += measure(w, batching, chosen, cfg.concurrencies)
            triton_direct.reload_model(triton.http_url, MODEL, "on", cache=False, headers=admin, placement=chosen)
            gateway_points = _measure_gateway(stack.gateway.url, "gateway", chat, cfg, step)

        step("the INT8 graph as a new version")
        write_int8_version(repository, MODEL, fp32.parent, int8_file, {"method": "onnxruntime dynamic, int8 weights",
                                                                        "agreement_with_fp32": int8.agreement})
        with Stack.local(repository, work / "state-int8", log_dir=out / "int8", log=step, gateway_env=ROW_CACHE_OFF) as stack:
            triton = stack.tritons[0]
            triton_direct.reload_model(triton.http_url, MODEL, "on", cache=False, headers=triton.settings.admin_headers(), placement=chosen)
            gateway_points += _measure_gateway(stack.gateway.url, "gateway_int8", chat, cfg, step)

    report = ProductionReport(
        machine=machine(), settings=cfg, parameters_m=params_m, export_s=export_s, limit=limit, int8=int8,
        sweep=sweep, chosen=chosen, triton=triton_points, naive=naive_points, gateway=gateway_points,
    )
    report.compute()
    return report


def _measure_gateway(url: str, target: str, chat: dict, cfg: ProductionSettings, step: Step) -> list[EndpointPoint]:
    points = []
    for name, e in chat.items():
        step(f"{target}: {name}")
        # A first request loads the new version's tokenizer: not part of any load point.
        asyncio.run(http_load.measure_endpoint(url, "warm-up", e, [1], 0.1, 0.0))
        points += asyncio.run(http_load.measure_endpoint(url, target, e, cfg.concurrencies, cfg.seconds, cfg.warmup_s))
    return points


def print_production(report: ProductionReport, console) -> None:
    from rich.table import Table

    console.print(f"sentiment at xlm-roberta-{report.settings.size} size: {report.parameters_m:g}M parameters, "
                  f"exported in {report.export_s:g} s")
    t = Table("batch", "rows/s", "ms/batch", title=f"In-process limit (ONNX Runtime, FP32, {CHAT_TOKENS} tokens)")
    for p in report.limit.points:
        t.add_row(str(p.batch), f"{p.rows_per_s:,.1f}", f"{p.ms_per_batch:,.1f}")
    console.print(t)
    i = report.int8
    console.print(f"INT8 vs FP32 at batch {i.batch}: {i.int8_rows_per_s:g} vs {i.fp32_rows_per_s:g} rows/s = {i.speedup:g}x; "
                  f"labels agree on {i.agreement:.1%} of chat lines (max logit diff {i.max_abs_diff:g}); {i.int8_mb:g} vs {i.fp32_mb:g} MiB")
    t = Table("placement", "req/s", "p95 ms", "avg batch", title=f"Triton sweep (one message, concurrency {report.settings.sweep_concurrency})")
    for s in report.sweep:
        mark = " (chosen)" if s.placement == report.chosen else ""
        t.add_row(f"{s.placement}{mark}", f"{s.point.throughput:,.1f}", f"{s.point.p95_ms:,.0f}", f"{s.point.avg_batch:.1f}")
    console.print(t)
    t = Table("target", "what", "conc", "req/s", "rows/s", "p50", "p95", "err", title="Triton, gateway and naive")
    for p in report.triton:
        t.add_row("triton", f"{p.workload}, batching {p.batching}", str(p.concurrency), f"{p.throughput:,.1f}",
                  f"{p.items_per_s:,.1f}", f"{p.p50_ms:,.0f}", f"{p.p95_ms:,.0f}", str(p.errors))
    for p in [*report.gateway, *report.naive]:
        t.add_row(p.target, p.endpoint, str(p.concurrency), f"{p.throughput:,.1f}", f"{p.items_per_s:,.1f}",
                  f"{p.p50_ms:,.0f}", f"{p.p95_ms:,.0f}", str(p.errors))
    console.print(t)
    t = Table("ratio", "value", title="Ratios (same run)")
    for k, v in report.ratios.items():
        t.add_row(k, "-" if v is None else f"{v:g}")
    console.print(t)
