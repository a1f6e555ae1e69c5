"""Start and stop the naive baseline service (`naive_app`) as a managed child process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from djserve.api import HEALTH_ROUTE
from djserve.process import ChildProcess, ManagedServer, http_status
from djserve.settings import PROJECT_ROOT


class NaiveServer(ManagedServer):
    def __init__(self, port: int, log_file: Path, seed: int = 0, sentiment_checkpoint: Path | None = None):
        self.port, self.seed, self.sentiment_checkpoint = port, seed, sentiment_checkpoint
        self.child = ChildProcess("naive baseline", log_file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "NaiveServer":
        argv = [sys.executable, "-m", "uvicorn", "loadtest.bench.naive_app:app", "--host", "127.0.0.1",
                "--port", str(self.port), "--workers", "1", "--log-level", "warning"]
        env = {**os.environ, "DJSERVE_NAIVE_SEED": str(self.seed)}
        if self.sentiment_checkpoint:
            env["DJSERVE_NAIVE_SENTIMENT_CHECKPOINT"] = str(self.sentiment_checkpoint)
        self.child.start(argv, env=env, cwd=PROJECT_ROOT)
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        self.child.wait_until(lambda: http_status(self.url + HEALTH_ROUTE) == 200, timeout or 180.0, f"ready at {self.url}{HEALTH_ROUTE}")

    def stop(self, timeout: float = 15.0) -> int | None:
        return self.child.stop(timeout)
