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


def test_serve_starts_both_and_stops_both(exported_repository, tmp_path):
    ports = {name: free_port() for name in ("port", "http-port", "grpc-port", "metrics-port")}
    argv = [sys.executable, "-m", "djserve.cli", "serve", *(a for k, v in ports.items() for a in (f"--{k}", str(v)))]
    env = {**os.environ, "DJSERVE_REPOSITORY": str(exported_repository), "DJSERVE_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        lines = []
        while time.monotonic() < deadline:  # bounded wait for the "ready" line
            line = proc.stdout.readline()
            lines.append(line)
            if "ready" in line and "gateway" in line or proc.poll() is not None:
                break
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
        assert (tmp_path / "logs" / "gateway.log").is_file() and (tmp_path / "logs" / "tritonserver.log").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
