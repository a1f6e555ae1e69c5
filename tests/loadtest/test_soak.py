"""The soak (loadtest.soak, `djserve soak`): the growth verdict on synthetic samples, the sampler on
process trees these tests start, and a short soak of the real gateway and Triton (session fixtures).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import typer
from typer.testing import CliRunner

from loadtest.cli import soak
from loadtest.soak import (
    MemorySample,
    MemorySampler,
    MiB,
    StackProcesses,
    growth,
    memory_checks,
    read_samples,
)
from tests.conftest import free_port, poll
from tests.loadtest.test_locust_scenarios import OUT_OF_REACH_MS, every_task_once


def samples(label: str, role: str, mib: list[float], every_s: float = 10.0, pid: int = 100, start_s: float = 0.0):
    return [MemorySample(elapsed_s=start_s + i * every_s, time=0.0, label=label, role=role, pid=pid, rss_bytes=int(v * MiB))
            for i, v in enumerate(mib)]


# --- the verdict on synthetic samples ----------------------------------------------------------------


def test_growth_is_measured_from_the_end_of_the_warm_up_with_median_levels():
    # 0-50 s: warm-up, the worker fills its caches (300 -> 380); then flat at 380-382 with one spike
    worker = samples("gateway-worker-1", "gateway-worker", [300, 330, 350, 370, 375, 379, 380, 381, 450, 380, 382, 381, 380])
    [g] = growth(worker, warmup_s=50)
    assert (g.start_rss, g.base_rss, g.end_rss) == (330 * MiB, 380 * MiB, 381 * MiB)  # medians of 3: the spike is ignored
    assert g.growth == pytest.approx(1 / 380)
    assert g.samples == 13 and (g.first_s, g.last_s) == (0, 120)
    [check] = memory_checks([g], max_growth=0.05, run_s=120, sample_every_s=10)
    assert check.passed and "380 -> 381 MiB" in check.message and "+0.3% < 5%" in check.message


def test_steady_growth_fails_and_its_slope_is_reported():
    # +6 MiB a minute (the figure), sampled every 10 s for 30 minutes, warm-up 10 minutes
    mib = [347 + i for i in range(181)]
    [g] = growth(samples("gateway-worker-1", "gateway-worker", mib), warmup_s=600)
    assert g.slope_mib_per_min == pytest.approx(6.0)
    assert g.base_rss == 408 * MiB and g.end_rss == 526 * MiB
    [check] = memory_checks([g], max_growth=0.05, run_s=1800, sample_every_s=10)
    assert not check.passed and "+28.9% >= 5%" in check.message


def test_only_gateway_processes_are_judged_and_a_replaced_one_fails():
    flat = [100] * 10
    data = (samples("gateway-server", "gateway-server", flat, pid=1)
            + samples("tritonserver", "tritonserver", [100, 120, 140, 160, 180, 200, 220, 240, 260, 280], pid=2)
            + samples("gateway-worker-1", "gateway-worker", flat[:5], pid=3)          # died at 40 s
            + samples("gateway-worker-1#2", "gateway-worker", flat[:5], pid=4, start_s=50))  # its replacement
    by_label = {g.label: g for g in growth(data, warmup_s=20)}
    assert by_label["tritonserver"].growth > 0.5  # measured and reported ...
    checks = {c.label: c for c in memory_checks(list(by_label.values()), 0.05, run_s=90, sample_every_s=10)}
    assert set(checks) == {"gateway-server", "gateway-worker-1", "gateway-worker-1#2"}  # ... not judged
    assert checks["gateway-server"].passed
    assert not checks["gateway-worker-1"].passed and "died or was replaced" in checks["gateway-worker-1"].message
    assert not checks["gateway-worker-1#2"].passed


def test_a_run_no_longer_than_its_warm_up_cannot_pass():
    [g] = growth(samples("gateway-worker-1", "gateway-worker", [100, 100, 100]), warmup_s=600)
    assert g.base_rss is None and g.growth is None
    [check] = memory_checks([g], 0.05, run_s=20, sample_every_s=10)
    assert not check.passed and "run longer than the warm-up" in check.message
    # a short run after the warm-up: base and end levels never share a sample
    [g] = growth(samples("w", "gateway-worker", [100, 100, 100, 110, 120]), warmup_s=20)
    assert (g.base_rss, g.end_rss) == (100 * MiB, 120 * MiB)


# --- the sampler on process trees started here ---------------------------------------------------------

SERVER = textwrap.dedent("""
    import signal, socket, subprocess, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that `finally` stops the child
    port, child = int(sys.argv[1]), sys.argv[2:]
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen()
    kid = subprocess.Popen([sys.executable, "-c", CHILD] + child)
    try:
        time.sleep(60)
    finally:
        kid.kill()
""")
CHILD = textwrap.dedent("""
    import os, sys, time
    grow, parent = sys.argv[1] == "grow", os.getppid()
    hold = []
    for i in range(600):
        if os.getppid() != parent:  # orphaned: never outlive the test
            break
        if grow and i < 200:
            hold.append(bytearray(b"x" * 2**20))  # 1 MiB more every 0.1 s, 200 MiB at most
        time.sleep(0.1)
""")


@pytest.fixture
def fake_stack(tmp_path):
    """A 'gateway' (listener + a worker that grows) and a 'Triton' (listener + a flat 'stub' whose
    command line names a model version), found the way the soak finds the real ones."""
    gateway_port, triton_port = free_port(), free_port()
    script = SERVER.replace("CHILD", repr(CHILD))
    env = {"DJSERVE_GATEWAY_TRITON_URL": f"127.0.0.1:{triton_port}", "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(triton_port), "flat", "/repo/judge/3/model.onnx"]),
        subprocess.Popen([sys.executable, "-c", script, str(gateway_port), "grow", "--worker-id", "1"], env=env),
    ]
    try:
        stack = StackProcesses(f"http://127.0.0.1:{gateway_port}")
        assert poll(lambda: _found(stack) == 4, 20), [p.label for p in _safe_find(stack)]
        yield stack
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def _safe_find(stack: StackProcesses):
    try:
        return stack.find()
    except Exception:  # noqa: BLE001 - not listening yet
        return []


def _found(stack: StackProcesses) -> int:
    return len(_safe_find(stack))


def test_the_sampler_finds_every_process_by_its_port_and_sees_one_grow(fake_stack, tmp_path):
    found = {p.label: p.role for p in fake_stack.find()}
    assert found == {"gateway-server": "gateway-server", "gateway-worker-1": "gateway-worker",
                     "tritonserver": "tritonserver", "stub:judge/3": "triton-stub"}  # Triton: from the gateway's env
    sampler = MemorySampler(fake_stack, tmp_path / "memory.csv")
    for _ in range(8):
        sampler.sample()
        time.sleep(0.4)
    on_disk = read_samples(tmp_path / "memory.csv")
    assert on_disk == sampler.samples and {s.label for s in on_disk} == set(found)
    by_label = {g.label: g for g in growth(on_disk, warmup_s=0.5, level_samples=2)}
    checks = {c.label: c for c in memory_checks(list(by_label.values()), 0.05, run_s=on_disk[-1].elapsed_s, sample_every_s=0.4)}
    assert set(checks) == {"gateway-server", "gateway-worker-1"}
    assert not checks["gateway-worker-1"].passed, checks["gateway-worker-1"].message  # +10 MiB a second
    assert by_label["gateway-worker-1"].slope_mib_per_min > 100
    assert checks["gateway-server"].passed, checks["gateway-server"].message
    assert abs(by_label["stub:judge/3"].growth) < 0.05


def test_no_gateway_is_an_error_not_an_empty_soak():
    from loadtest.soak import SoakError

    with pytest.raises(SoakError, match="is the gateway running"):
        StackProcesses(f"http://127.0.0.1:{free_port()}").find()


# --- a short soak of the real stack ----------------------------------------------------------------------


def test_a_short_soak_of_the_real_stack_samples_every_process_and_judges(gateway, tmp_path):
    out = tmp_path / "soak"
    app = typer.Typer()
    app.command()(soak)
    result = CliRunner().invoke(app, [
        "--host", gateway.url, "--users", "2", "--minutes", "0.25", "--warmup-minutes", "0.05", "--sample-every", "1",
        "--out", str(out), "--p95-ms", OUT_OF_REACH_MS, "--max-growth", "10", "--weights", every_task_once("gateway"),
    ])  # fmt: skip
    log = (out / "locust.log").read_text()[-2000:] if (out / "locust.log").exists() else ""
    assert result.exit_code == 0, result.output + log
    assert "the soak holds" in result.output
    report = json.loads((out / "soak.json").read_text())
    roles = {p["role"] for p in report["processes"]}
    assert roles == {"gateway-server", "gateway-worker", "tritonserver", "triton-stub"}, report["processes"]
    stubs = {p["label"] for p in report["processes"] if p["role"] == "triton-stub"}
    assert {"stub:judge/1", "stub:sentiment/1", "stub:beat_tracker/1"} <= stubs
    assert report["requests"] > 0 and report["failures"] == 0
    assert all(c["passed"] for c in report["memory_checks"]) and len(report["memory_checks"]) >= 2
    rows = read_samples(out / "memory.csv")
    assert len({r.elapsed_s for r in rows}) >= 10  # ~15 samples in 15 s
