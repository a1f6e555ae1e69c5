"""Run the BentoML gateway (`bentoml serve bentos.service:Gateway`) as a managed child process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from djserve.api import READYZ_ROUTE
from djserve.process import ChildProcess, ManagedServer, ProcessStartError, http_status
from djserve.settings import PROJECT_ROOT
from djserve.triton.admin import ADMIN_KEY_ENV


class GatewayServer(ManagedServer):
    def __init__(
        self,
        triton_url: str,
        log_file: Path,
        host: str = "127.0.0.1",
        port: int = 3000,
        env: dict[str, str] | None = None,
    ):
        self.host, self.port, self.triton_url = host, port, triton_url
        self.env = env or {}
        self.child = ChildProcess("gateway", log_file)

    @property
    def url(self) -> str:
        return f"http://{'127.0.0.1' if self.host in ('0.0.0.0', '') else self.host}:{self.port}"

    def start(self) -> "GatewayServer":
        argv = [sys.executable, "-m", "bentoml", "serve", "bentos.service:Gateway", "--host", self.host, "--port", str(self.port)]
        # The gateway only infers and asks readiness: it never gets Triton's admin key.
        inherited = {k: v for k, v in os.environ.items() if k != ADMIN_KEY_ENV}
        env = {**inherited, "DJSERVE_GATEWAY_TRITON_URL": self.triton_url, **self.env}
        self.child.start(argv, env=env, cwd=PROJECT_ROOT)
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until /readyz answers 200: the gateway is up and sees Triton with every routed version."""
        self.child.wait_until(
            lambda: http_status(self.url + READYZ_ROUTE) == 200, 120.0 if timeout is None else timeout, f"ready at {self.url}{READYZ_ROUTE}"
        )

    def stop(self, timeout: float = 15.0) -> int | None:
        return self.child.stop(timeout)


__all__ = ["GatewayServer", "ProcessStartError"]
