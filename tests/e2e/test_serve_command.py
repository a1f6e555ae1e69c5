"""`djserve serve`: Triton and the gateway come up together and stop together on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.conftest import free_port


def start_serve(repository, state, **extra_env: str) -> tuple[subprocess.Popen, dict[str, int], list[str]]:
    """`djserve serve` on free ports, once it printed its ready line (or exited)."""
    ports = {name: free_port() for name in ("port", "http-port", "grpc-port", "metrics-port")}
    argv = [sys.executable, "-m", "djserve.cli", "serve", *(a for k, v in ports.items() for a in (f"--{k}", str(v)))]
    env = {**os.environ, "DJSERVE_REPOSITORY": str(repository), "DJSERVE_STATE_DIR": str(state), **extra_env}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    lines = []
    while time.monotonic() < deadline:  # bounded wait for the "ready" line
        line = proc.stdout.readline()
        lines.append(line)
        if "ready" in line and "gateway" in line or proc.poll() is not None:
            break
    return proc, ports, lines


def test_serve_starts_both_and_stops_both(exported_repository, tmp_path):
    proc, ports, lines = start_serve(exported_repository, tmp_path)
    try:
        assert proc.poll() is None, "".join(lines)
        gateway = f"http://127.0.0.1:{ports['port']}"
        assert httpx.get(f"{gateway}/readyz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{ports['http-port']}/v2/health/ready").status_code == 200
        r = httpx.post(f"{gateway}/ai/sentiment/analyze", json={"text": "what a set"}, timeout=30)
        assert r.status_code == 200, r.text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("tritonserver" in " ".join(c.cmdline()) for c in children)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        time.sleep(0.5)
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert (tmp_path / "logs" / "gateway-0.log").is_file() and (tmp_path / "logs" / "tritonserver-0.log").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_with_an_admin_key_restricts_model_control_only(exported_repository, tmp_path):
    """With DJSERVE_TRITON_ADMIN_KEY: Triton refuses load/unload without the key, the promoter's
    restore() (which loads the policy's versions) uses it, the gateway serves without it."""
    import secrets

    from djserve.triton.admin import ADMIN_KEY_ENV, admin_headers

    key = "serve-test-" + secrets.token_hex(16)
    proc, ports, lines = start_serve(exported_repository, tmp_path, **{ADMIN_KEY_ENV: key})
    try:
        assert proc.poll() is None, "".join(lines)
        gateway, triton = f"http://127.0.0.1:{ports['port']}", f"http://127.0.0.1:{ports['http-port']}"
        assert (tmp_path / "traffic_policy.json").is_file()  # restore() ran and materialized the policy
        assert httpx.get(f"{gateway}/readyz").status_code == 200
        r = httpx.post(f"{gateway}/ai/sentiment/analyze", json={"text": "what a set"}, timeout=30)
        assert r.status_code == 200, r.text

        refused = httpx.post(f"{triton}/v2/repository/models/sentiment/unload", json={})
        assert refused.status_code == 403 and "restricted" in refused.json()["error"]
        index = httpx.post(f"{triton}/v2/repository/index", json={}, headers=admin_headers(key))
        assert index.status_code == 200
        assert any(m["name"] == "sentiment" and m.get("state") == "READY" for m in index.json())
        assert httpx.get(f"{triton}/v2/models/sentiment/ready").status_code == 200  # still loaded

        children = psutil.Process(proc.pid).children(recursive=True)
        gateway_procs = [c for c in children if "bentoml" in " ".join(c.cmdline())]
        assert gateway_procs and all(ADMIN_KEY_ENV not in c.environ() for c in gateway_procs)

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert key not in "".join(lines) + out
        for log in (tmp_path / "logs").glob("*.log"):
            assert key not in log.read_text(errors="replace"), log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_killed_triton_is_restarted_and_the_stack_heals(exported_repository, tmp_path):
    """SIGKILL to tritonserver: the gateway answers 503 meanwhile, then `djserve serve` restarts
    Triton, restores the policy's versions and the stack serves again by itself."""
    proc, ports, lines = start_serve(exported_repository, tmp_path)
    try:
        assert proc.poll() is None, "".join(lines)
        gateway = f"http://127.0.0.1:{ports['port']}"

        def tritons():
            return [c for c in psutil.Process(proc.pid).children(recursive=True)
                    if "tritonserver" in " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE]

        first = tritons()
        assert len(first) == 1
        first[0].kill()
        first[0].wait(timeout=30)
        down = httpx.post(f"{gateway}/ai/sentiment/analyze", json={"text": "what a set"}, timeout=30)
        assert down.status_code in (200, 503)  # 503 while Triton is away (200 only if it is back already)
        if down.status_code == 503:
            assert down.headers["Retry-After"] and down.json()["error"]["code"] == "triton_unavailable"

        def healed() -> bool:
            try:
                ok = httpx.get(f"{gateway}/readyz", timeout=5).status_code == 200
                return ok and httpx.post(f"{gateway}/ai/sentiment/analyze", json={"text": "what a set"},
                                         timeout=30).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not healed():  # a bound on waiting, not a timing assertion
            time.sleep(1)
        assert healed() and proc.poll() is None
        second = tritons()
        assert len(second) == 1 and second[0].pid != first[0].pid
        metrics = httpx.get(f"{gateway}/metrics", timeout=10).text
        assert 'djserve_child_restarts{child="triton-0"} 1.0' in metrics, [m for m in metrics.splitlines() if "restarts" in m]
        assert 'djserve_child_restarts{child="gateway-0"} 0.0' in metrics

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert "triton-0 exited" in out and "triton-0 is back" in out, out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
