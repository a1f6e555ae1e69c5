"""One running stack: Triton replica(s) and gateway(s) started, restored, supervised and stopped together.

`djserve serve`, the benchmark and the end-to-end tests all run it:

    with Stack.local(repository, state_dir, replicas=2, gateways=2, on_triton_ready=restore) as stack:
        stack.supervise(stop_event)          # until stop_event is set (serve), or not at all (tests)

Every gateway reaches every Triton replica (DJSERVE_GATEWAY_TRITON_URL is their list) and reads one
traffic policy. `on_triton_ready(triton)` runs after each replica is ready, at start and after every
restart: `djserve serve` loads the traffic policy's versions there (the repository alone would load
its newest ones). Supervision restarts a dead child with backoff, a bounded number of times per
window (djserve.supervision.RestartBudget); a child past its budget ends `supervise` with a
`ChildCrashLoop`. Restarts are written to `<state>/supervision.json`, which the gateways export as
`djserve_child_restarts{child}` on /metrics. Meanwhile a gateway whose Triton is gone answers 503 with
Retry-After and /readyz is false; it comes back by itself once Triton does.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from djserve.api import ADMIN_TOKEN_ENV
from djserve.gateway import GatewayServer
from djserve.process import ProcessStartError, free_port
from djserve.supervision import SUPERVISION_FILE, ChildRecord, RestartBudget, SupervisionRecord
from djserve.triton import TritonError, TritonServer, TritonSettings

TritonHook = Callable[[TritonServer], None]


def gateway_environment(repository: Path, state_dir: Path, admin_token: str | None = None) -> dict[str, str]:
    """A gateway's settings for a stack: the repository Triton serves (tokenizers), and the policy,
    drift baselines, prediction log and supervision record in `state_dir`, shared with MLOps."""
    return {
        "DJSERVE_GATEWAY_REPOSITORY": str(repository),
        "DJSERVE_GATEWAY_POLICY_FILE": str(state_dir / "traffic_policy.json"),
        "DJSERVE_GATEWAY_DRIFT_BASELINE_DIR": str(state_dir / "drift"),
        "DJSERVE_GATEWAY_PREDICTIONS_DIR": str(state_dir / "predictions"),
        "DJSERVE_GATEWAY_SUPERVISION_FILE": str(state_dir / SUPERVISION_FILE),
        "BENTOML_HOME": str(state_dir / "bentoml"),
        **({ADMIN_TOKEN_ENV: admin_token} if admin_token else {}),
    }


class ChildCrashLoop(RuntimeError):
    """A child kept dying: more restarts than its budget allows within the window."""


@dataclass
class _Child:
    name: str
    server: TritonServer | GatewayServer
    restart: Callable[[], None]
    budget: RestartBudget = field(default_factory=RestartBudget)

    # Both servers keep their process in a ChildProcess (`.child`): one place to look.
    def running(self) -> bool:
        return self.server.child.is_running()

    def exit_code(self) -> Optional[int]:
        process = self.server.child.process
        return process.returncode if process is not None else None

    @property
    def log_file(self):
        return self.server.child.log_file


class Stack:
    def __init__(self, tritons: list[TritonServer], gateways: list[GatewayServer], state_dir: Path,
                 on_triton_ready: TritonHook | None = None, log: Callable[[str], None] = print,
                 budget: Callable[[], RestartBudget] = RestartBudget):
        self.tritons, self.gateways, self.state_dir = tritons, gateways, state_dir
        self.on_triton_ready, self.log = on_triton_ready, log
        self.record = SupervisionRecord()
        self._children = [_Child(f"triton-{i}", t, lambda t=t: self._restart_triton(t), budget()) for i, t in enumerate(tritons)] + \
                         [_Child(f"gateway-{i}", g, lambda g=g: self._restart_gateway(g), budget()) for i, g in enumerate(gateways)]

    @classmethod
    def local(
        cls, repository: Path, state_dir: Path, *, replicas: int = 1, gateways: int = 1, host: str = "127.0.0.1",
        triton_ports: list[tuple[int, int, int]] | None = None, gateway_ports: list[int] | None = None,
        admin_token: str | None = None, gateway_env: dict[str, str] | None = None, triton_overrides: dict | None = None,
        on_triton_ready: TritonHook | None = None, log: Callable[[str], None] = print, log_dir: Path | None = None,
    ) -> "Stack":
        """Replicas and gateways on this machine, sharing `state_dir` (policy, drift, predictions, logs).

        Ports: `triton_ports` (http, grpc, metrics) per replica and `gateway_ports` per gateway, else free
        ones. Logs: `log_dir` (default `<state_dir>/logs`), `tritonserver-<i>.log` and `gateway-<i>.log`."""
        logs = log_dir or state_dir / "logs"
        tritons = []
        for i in range(replicas):
            http, grpc, metrics = triton_ports[i] if triton_ports else (free_port(), free_port(), free_port())
            settings = TritonSettings(model_repository=repository, backend_dir=state_dir / "backends", host=host,
                                      http_port=http, grpc_port=grpc, metrics_port=metrics,
                                      log_file=logs / f"tritonserver-{i}.log", **(triton_overrides or {}))
            tritons.append(TritonServer(settings))
        env = gateway_environment(repository, state_dir, admin_token) | (gateway_env or {})
        grpc_urls = ",".join(t.grpc_url for t in tritons)
        gws = [GatewayServer(grpc_urls, logs / f"gateway-{i}.log", host=host,
                             port=gateway_ports[i] if gateway_ports else free_port(), env=env)
               for i in range(gateways)]
        return cls(tritons, gws, state_dir, on_triton_ready, log)

    # --- addresses ---------------------------------------------------------------------------

    @property
    def triton_http_urls(self) -> str:
        """Every replica's HTTP endpoint, comma-separated (PromotionSettings.triton_http_url)."""
        return ",".join(t.http_url for t in self.tritons)

    @property
    def triton_grpc_urls(self) -> str:
        return ",".join(t.grpc_url for t in self.tritons)

    @property
    def gateway(self) -> GatewayServer:
        return self.gateways[0]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float | None = None) -> "Stack":
        """Every child at once (the gateways' imports and warm-up take as long as Triton's loads), then
        each replica ready and restored, then each gateway ready. A failure stops what started."""
        try:
            for t in self.tritons:
                t.start()
            for g in self.gateways:
                g.start()
            for t in self.tritons:
                t.wait_ready()
                if self.on_triton_ready is not None:
                    self.on_triton_ready(t)
            for g in self.gateways:
                g.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self._write_record()
        return self

    def stop(self) -> None:
        """Gateways first (they stop taking requests), then the replicas."""
        for g in self.gateways:
            g.stop()
        for t in self.tritons:
            t.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- supervision -------------------------------------------------------------------------

    def supervise(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Restart children that die until `stop` is set; ChildCrashLoop when one exceeds its budget."""
        while not stop.wait(poll_s):
            for child in self._children:
                if stop.is_set() or child.running():
                    continue
                if not self.heal(child, stop):
                    return

    def heal(self, child: _Child, stop: threading.Event | None = None) -> bool:
        """Restart one dead child after its backoff; False if `stop` was set while waiting."""
        code = child.exit_code()
        delay = child.budget.next_delay(time.monotonic())
        if delay is None:
            raise ChildCrashLoop(f"{child.name} keeps crashing ({child.budget.max_restarts} restarts within "
                                 f"{child.budget.window_s:g} s, last exit code {code}); see {child.log_file}")
        self.log(f"{child.name} exited (code {code}); restarting in {delay:g} s "
                 f"(restart {child.budget.recent} of {child.budget.max_restarts} allowed per {child.budget.window_s:g} s)")
        if (stop or threading.Event()).wait(delay):
            return False
        record = self.record.children.setdefault(child.name, ChildRecord())
        record.restarts += 1
        record.last_exit_code = code
        record.last_restart_at = datetime.now(timezone.utc).isoformat()
        self._write_record()
        try:
            child.restart()
            self.log(f"{child.name} is back after restart {child.budget.recent}")
        except (TritonError, ProcessStartError, RuntimeError) as exc:
            self.log(f"{child.name} restart failed: {str(exc).splitlines()[0]}")  # dead again: the next poll retries
        return True

    def _restart_triton(self, triton: TritonServer) -> None:
        triton.stop()  # the rest of its process group, its shared memory
        triton.start(assemble=False)
        triton.wait_ready()
        if self.on_triton_ready is not None:
            self.on_triton_ready(triton)
        for g in self.gateways:  # back in service: their /readyz also reads the new restart count
            if g.child.is_running():
                g.wait_ready()

    @staticmethod
    def _restart_gateway(gateway: GatewayServer) -> None:
        gateway.stop()
        gateway.start()
        gateway.wait_ready()

    def _write_record(self) -> None:
        for child in self._children:
            self.record.children.setdefault(child.name, ChildRecord())
        self.record.write(self.state_dir / SUPERVISION_FILE)
