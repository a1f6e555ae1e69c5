"""Two Triton replicas and two gateways (one traffic policy) on loopback, under Locust load from both
gateways: a full promotion (canary 10% -> 50% -> complete) and a rollback, then a replica killed.
Every traffic shift finds every replica on the same versions; no request fails; a promotion while a
replica is down is blocked, names the replica, and leaves the live one as it was."""

from __future__ import annotations

import threading

import httpx
import pytest

from djserve.mlops.promotion import Promoter, PromotionError, PromotionSettings
from djserve.settings import Settings
from djserve.stack import Stack
from djserve.specs import EXPORTED
from loadtest import locust_run
from tests.conftest import ADMIN_TOKEN, copy_committed_repository, local_stack, poll, skip_without_tritonserver
from tests.e2e.test_promotion import register_judge

skip_without_tritonserver()

WEIGHTS = {"sentiment": 6, "sentiment_batch": 0, "recommendations": 3, "live_beats": 0, "judge": 1}
LOAD_SECONDS = 150


def retried(stack: Stack) -> float:
    """Calls the gateways sent once more to another replica and that answered there."""
    total = 0.0
    for g in stack.gateways:
        for line in httpx.get(f"{g.url}/metrics", timeout=10).text.splitlines():
            if line.startswith('ai_triton_retries_total{outcome="ok"}'):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_promotion_and_rollback_across_two_replicas_lose_no_request(exported_repository, tmp_path):
    import shutil

    repo = copy_committed_repository(tmp_path / "model_repository")
    for name in EXPORTED:
        shutil.copytree(exported_repository / name / "1", repo / name / "1")
    state = tmp_path / "state"

    def restore(triton) -> None:  # what `djserve serve` does after each replica is (re)started
        Promoter(Settings(repository=repo, state_dir=state), PromotionSettings(triton_http_url=triton.http_url),
                 log=lambda line: None).restore()

    with local_stack(repo, state, replicas=2, gateways=2, on_triton_ready=restore) as stack:
        promoter = Promoter(Settings(repository=repo, state_dir=state),
                            PromotionSettings(triton_http_url=stack.triton_http_urls, gateway_url=stack.gateway.url,
                                              admin_token=ADMIN_TOKEN, drain_s=1.0), log=lambda line: None)
        assert len(promoter.triton.urls) == 2

        def fenced() -> list[int]:
            """The judge versions: the same on every replica (else the test fails here)."""
            seen = promoter.triton.loaded_by_replica("judge")
            assert len({tuple(v) for v in seen.values()}) == 1, seen
            return next(iter(seen.values()))

        runs: dict[str, locust_run.RunResult] = {}

        def load(i: int) -> None:
            runs[f"gateway-{i}"] = locust_run.run("gateway", host=stack.gateways[i].url, users=2, seconds=LOAD_SECONDS,
                                                  out=tmp_path / f"locust-{i}", weights=WEIGHTS)

        threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            stable = promoter.policy("judge").stable
            assert fenced() == [stable]
            new = promoter.promote("judge", register_judge(promoter, tmp_path), canary_percent=10, force=True).triton_version
            assert fenced() == [stable, new]
            promoter.set_canary("judge", 50)
            assert fenced() == [stable, new]
            promoter.complete("judge")
            assert fenced() == [stable, new] and promoter.policy("judge").stable == new
            promoter.rollback("judge", reason="drill")
            assert fenced() == [stable] and promoter.policy("judge").stable == stable

            # One replica dies under load: the gateways retry its calls on the other one.
            dead = stack.tritons[1]
            assert all(t.is_alive() for t in threads), "the load ended before the replica was killed"
            dead.process.kill()
            dead.process.wait(timeout=30)
            assert poll(lambda: retried(stack) > 0, 60), "no call was retried on the live replica"
            before = promoter.triton.replicas[0].loaded_versions("judge")
            with pytest.raises(PromotionError) as refused:
                promoter.promote("judge", register_judge(promoter, tmp_path, shift=0.5), canary_percent=10, force=True)
            assert dead.http_url.removeprefix("http://") in str(refused.value)
            assert promoter.triton.replicas[0].loaded_versions("judge") == before  # the live replica is as it was
            assert promoter.policy("judge").candidate is None
        finally:
            for t in threads:
                t.join(timeout=LOAD_SECONDS + 120)
    assert set(runs) == {"gateway-0", "gateway-1"}
    for name, result in runs.items():
        stats = {e.name: e for e in result.report.endpoints}
        assert sum(e.requests for e in stats.values()) > 100, (name, stats)
        assert all(e.failures == 0 for e in stats.values()), (name, {n: e.failures for n, e in stats.items()}, result.log_file)
