"""`djserve serve` from launch to ready: Triton with every model loaded and the gateway's /readyz."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pydantic import BaseModel

from djserve.api import READYZ_ROUTE
from djserve.process import free_port, http_status


class Startup(BaseModel):
    seconds_to_ready: float
    models_ready: int
    """Models Triton reported READY at that moment (all of the repository's)."""


def measure_startup(repository: Path, timeout_s: float = 180.0) -> Startup:
    import json

    ports = {k: free_port() for k in ("port", "http-port", "grpc-port", "metrics-port")}
    argv = [sys.executable, "-m", "djserve.cli", "serve", "--repository", str(repository)]
    argv += [f"--{k}={v}" for k, v in ports.items()]
    with tempfile.TemporaryDirectory(prefix="djserve-bench-startup-") as state:
        env = {**os.environ, "DJSERVE_STATE_DIR": state}
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            while http_status(f"http://127.0.0.1:{ports['port']}{READYZ_ROUTE}") != 200:
                if proc.poll() is not None:
                    raise RuntimeError(f"djserve serve exited with {proc.returncode} before it was ready")
                if time.monotonic() - t0 > timeout_s:
                    raise RuntimeError(f"djserve serve was not ready within {timeout_s:g} s")
                time.sleep(0.1)
            seconds = time.monotonic() - t0
            from djserve.triton.admin import ADMIN_KEY_ENV, admin_headers

            req = urllib.request.Request(
                f"http://127.0.0.1:{ports['http-port']}/v2/repository/index", data=b"{}", method="POST",
                headers=admin_headers(os.environ.get(ADMIN_KEY_ENV)),  # a restricted Triton wants the key
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                ready = sum(1 for m in json.loads(r.read()) if m.get("state") == "READY")
        finally:
            proc.send_signal(signal.SIGINT)  # its own shutdown stops Triton and the gateway
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return Startup(seconds_to_ready=round(seconds, 2), models_ready=ready)
