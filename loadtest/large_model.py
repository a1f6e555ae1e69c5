"""A model over 2 GiB through the whole path, once, at full size: xlm-roberta-large (560M parameters,
2.2 GB as FP32, seeded random weights) registered in MLflow, promoted (the registry version exported
with ONNX external data, the graph checked and parity-tested by path), loaded by Triton beside the
reference version, given a canary share, answered through the gateway, completed.

    python -m loadtest.large_model --repository model_repository --out loadtest/results/large-model

Minutes and ~12 GB of memory: a script, not part of `make test` (which runs the same code paths on a
small model with the external-data threshold lowered). Writes `large_model.json`; exits 1 when a
step fails. The random model cannot pass the offline quality gate, so it is promoted with `force`
(recorded as such): this checks the mechanics of size, not a model's quality.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from djserve import api
from djserve.repository.layout import METADATA_FILE, ModelRepository
from djserve.mlops.promotion import Promoter, PromotionSettings
from djserve.settings import Settings
from djserve.stack import Stack
from exporters.architectures.sentiment import build_production_checkpoint
from exporters.export import WEIGHTS_FILE

FAMILY = "sentiment"
console = Console(width=160)


def _answers(url: str, n: int, phase: str) -> dict[int, int]:
    """Versions that answered `n` distinct chat messages (count per version; the text is the routing
    key, and `phase` keeps each phase's messages apart from the caches)."""
    counts: dict[int, int] = {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(n):
            r = client.post(api.SENTIMENT_ROUTE, json={"text": f"{phase}: what a drop {i}", "language": "en"})
            r.raise_for_status()
            version = int(r.json()["modelVersion"])
            counts[version] = counts.get(version, 0) + 1
    return counts


def run(repository: Path, out: Path, size: str = "large", requests: int = 40) -> dict:
    figures: dict = {"size": size}
    out.mkdir(parents=True, exist_ok=True)
    token = "large-model-check"
    with tempfile.TemporaryDirectory(prefix="djserve-large-") as tmp:
        root = Path(tmp)

        def timed(name: str, fn):
            console.print(f"[bold]{name}[/] ...")
            t0 = time.perf_counter()
            result = fn()
            figures[f"{name}_s"] = round(time.perf_counter() - t0, 1)
            console.print(f"  done in {figures[f'{name}_s']} s")
            return result

        ckpt = timed("build_checkpoint", lambda: build_production_checkpoint(root / "checkpoint", size))
        figures["checkpoint_mb"] = round(sum(f.stat().st_size for f in ckpt.iterdir()) / 2**20)
        repo = root / "model_repository"
        shutil.copytree(repository, repo)
        state = root / "state"
        with Stack.local(repo, state, admin_token=token, log=lambda line: console.print(f"  {line}"), log_dir=out) as stack:
            promo = PromotionSettings(triton_http_url=stack.triton_http_urls, gateway_url=stack.gateway.url, admin_token=token)
            promoter = Promoter(Settings(repository=repo, state_dir=state), promo, log=lambda line: console.print(f"  {line}"))
            promoter.materialize()
            stable = promoter.policy(FAMILY).stable
            rv = timed("register", lambda: promoter.registry.register(FAMILY, ckpt, weights=f"xlm-roberta-{size}, seeded random", parity={}, spec={}))
            uri = f"models:/{rv.name}/{rv.version}"
            promoted = timed("promote", lambda: promoter.promote(FAMILY, uri, canary_percent=50.0, force=True))
            new = promoter.policy(FAMILY).candidate
            version_dir = ModelRepository(repo).model_dir(FAMILY) / str(new)
            files = {f.name: f.stat().st_size for f in version_dir.iterdir() if f.is_file()}
            figures.update(stable=stable, candidate=new, files_mb={k: round(v / 2**20, 1) for k, v in files.items()},
                           offline_gate=promoted.offline.verdict, forced=True,
                           metadata=json.loads((version_dir / METADATA_FILE).read_text()))
            figures["canary_answers"] = timed("canary_requests", lambda: _answers(stack.gateway.url, requests, "canary"))
            timed("complete", lambda: promoter.complete(FAMILY))
            figures["completed_answers"] = timed("completed_requests", lambda: _answers(stack.gateway.url, requests, "completed"))
    ok = (WEIGHTS_FILE in figures["files_mb"] and figures["files_mb"][WEIGHTS_FILE] > 2048
          and set(figures["canary_answers"]) == {stable, new} and set(figures["completed_answers"]) == {new})
    figures["ok"] = ok
    (out / "large_model.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return figures


def main(
    repository: Annotated[Path, typer.Option(help="a repository with every model exported (the reference versions)")] = Path("model_repository"),
    out: Annotated[Path, typer.Option(help="where large_model.json and the server logs go")] = Path(".djserve/large-model"),
    size: Annotated[str, typer.Option(help="large (over 2 GiB) or base")] = "large",
    requests: Annotated[int, typer.Option(help="chat messages sent during the canary and after completion")] = 40,
) -> None:
    figures = run(repository.resolve(), out.resolve(), size, requests)
    console.print_json(data=figures)
    if not figures["ok"]:
        console.print("[red]failed[/]: expected model.onnx.data over 2 GiB, both versions answering the canary, only the new one after")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
