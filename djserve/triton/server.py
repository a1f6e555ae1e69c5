"""Run the real `tritonserver` (from the `nvidia-pytriton` wheel) as a child process.

    settings = TritonSettings(model_repository="models")
    with TritonServer(settings) as server:      # start + wait_ready; stop on exit
        print(server.grpc_url)
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from djserve.process import ChildProcess, ManagedServer, ProcessStartError, http_status
from djserve.triton.admin import ADMIN_KEY_ENV, AdminKey, admin_headers, restricted_api_args
from djserve.triton.backends import (
    TritonError,
    TritonSetupError,
    assemble_backends,
    check_installation,
    embedded_cache_dir,
    missing_backend_files,
    server_environment,
)

SHM_DIR = Path("/dev/shm")
SHM_PREFIX = "triton_python_backend_shm_region_"
"""The python backend's default name prefix for its per-stub shared-memory regions."""


class TritonStartError(TritonError):
    """The server exited or did not become ready in time; the message carries its log tail."""


class TritonSettings(BaseSettings):
    """Flags of one `tritonserver`. Every field can come from `DJSERVE_TRITON_<FIELD>`."""

    # hide_input_in_errors: a rejected admin_key must not be echoed into an error message or log.
    model_config = SettingsConfigDict(env_prefix="DJSERVE_TRITON_", extra="forbid", hide_input_in_errors=True)

    model_repository: Path
    backend_dir: Path | None = None
    """Backend directory; default `<model_repository>/../.djserve/backends`."""
    log_file: Path | None = None
    """Server stdout/stderr; default `<model_repository>/../.djserve/logs/tritonserver-<http_port>.log`."""
    host: str = "127.0.0.1"
    """Address HTTP, gRPC and metrics bind to. Loopback by default: nothing else can reach it."""
    http_port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(8001, ge=1, le=65535)
    metrics_port: int = Field(8002, ge=1, le=65535)
    allow_metrics: bool = True
    model_control_mode: Literal["none", "poll", "explicit"] = "explicit"
    load_models: list[str] = ["*"]
    """Models loaded at start in explicit mode (`--load-model=...`); `*` loads all."""
    repository_poll_secs: int = Field(15, ge=1)
    """Only used in poll mode."""
    strict_readiness: bool = True
    """Ready only when every model is ready (`/v2/health/ready`)."""
    log_verbose: int = Field(0, ge=0)
    startup_timeout_s: float = Field(120.0, gt=0)
    exit_timeout_s: int = Field(10, ge=0)
    """How long Triton waits for in-flight requests on shutdown (`--exit-timeout-secs`)."""
    # CPU-machine flags: no pinned memory pool, no GPU metrics, one bad model
    # must not take the server down, no auto-complete (+1.3-1.8 s per python model at load).
    pinned_memory_pool_byte_size: int = Field(0, ge=0)
    allow_gpu_metrics: bool = False
    exit_on_error: bool = False
    disable_auto_complete_config: bool = True
    response_cache_mb: float = Field(64.0, ge=0)
    """Size of Triton's local response cache (`--cache-config local,size=...`), used by the models whose
    spec enables it (sentiment, recommender); hits and misses are `nv_cache_num_hits_per_model` and
    `nv_cache_num_misses_per_model` on Triton's /metrics. 0: no cache."""
    cache_directory: Path | None = None
    """Where tritonserver finds its cache implementations; default: the embedded server's own (the
    wheel's `tritonserver/caches`)."""
    extra_args: list[str] = []
    """Appended verbatim to the command line."""
    admin_key: AdminKey = None
    """`DJSERVE_TRITON_ADMIN_KEY`: when set, model control (load, unload, repository index) over
    HTTP and gRPC needs this key in a header (see djserve.triton.admin); inference, health,
    metadata and statistics stay open. At least 16 printable ASCII characters."""

    @field_validator("load_models")
    @classmethod
    def _no_empty_names(cls, v: list[str]) -> list[str]:
        if any(not name.strip() for name in v):
            raise ValueError("model names in load_models must not be empty")
        return v

    @property
    def state_dir(self) -> Path:
        return self.model_repository.resolve().parent / ".djserve"

    @property
    def resolved_backend_dir(self) -> Path:
        return (self.backend_dir or self.state_dir / "backends").resolve()

    @property
    def resolved_log_file(self) -> Path:
        return (self.log_file or self.state_dir / "logs" / f"tritonserver-{self.http_port}.log").resolve()

    @property
    def client_host(self) -> str:
        """Where a local client connects: a wildcard bind is reached through loopback."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)

    def admin_headers(self, protocol: Literal["http", "grpc"] = "http") -> dict[str, str]:
        """The header model-control requests to this server need (`{}` without an admin key)."""
        return admin_headers(self.admin_key, protocol)

    def argv(self, binary: Path | str = "tritonserver", shm_prefix: str | None = None) -> list[str]:
        """The full command line (binary first). It carries the admin key, if any: never log it."""
        args = [
            str(binary),
            f"--model-repository={self.model_repository.resolve()}",
            f"--backend-directory={self.resolved_backend_dir}",
            f"--model-control-mode={self.model_control_mode}",
            f"--strict-readiness={_bool(self.strict_readiness)}",
            f"--exit-on-error={_bool(self.exit_on_error)}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--allow-metrics={_bool(self.allow_metrics)}",
            f"--pinned-memory-pool-byte-size={self.pinned_memory_pool_byte_size}",
        ]
        if self.allow_metrics:
            args += [
                f"--metrics-address={self.host}",
                f"--metrics-port={self.metrics_port}",
                f"--allow-gpu-metrics={_bool(self.allow_gpu_metrics)}",
            ]
        if self.model_control_mode == "explicit":
            args += [f"--load-model={name}" for name in self.load_models]
        elif self.model_control_mode == "poll":
            args.append(f"--repository-poll-secs={self.repository_poll_secs}")
        if self.disable_auto_complete_config:
            args.append("--disable-auto-complete-config")
        if shm_prefix:
            args.append(f"--backend-config=python,shm-region-prefix-name={shm_prefix}")
        if self.response_cache_mb > 0:
            args += [f"--cache-directory={(self.cache_directory or embedded_cache_dir()).resolve()}",
                     f"--cache-config=local,size={int(self.response_cache_mb * 2**20)}"]
        args += restricted_api_args(self.admin_key)
        return args + list(self.extra_args)


def _bool(value: bool) -> str:
    return "true" if value else "false"


class TritonServer(ManagedServer):
    """One `tritonserver` child process. As a context manager: start + wait_ready, stop on exit."""

    def __init__(self, settings: TritonSettings, log_file: Path | str | None = None):
        self.settings = settings
        self.child = ChildProcess(
            "tritonserver",
            Path(log_file) if log_file else settings.resolved_log_file,
            tail_cut="\nUsage: tritonserver",  # a rejected flag is followed by the whole usage text
        )
        # Our own shared-memory prefix (still starting with the python backend's default), so that
        # cleanup after stop can tell this server's regions from those of any other server.
        self.shm_prefix = f"{SHM_PREFIX}djserve_{os.getpid()}_{uuid.uuid4().hex[:8]}_"

    # -- URLs ---------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{_hostport(self.settings.client_host, self.settings.http_port)}"

    @property
    def grpc_url(self) -> str:
        """`host:port`, as tritonclient.grpc wants it."""
        return _hostport(self.settings.client_host, self.settings.grpc_port)

    @property
    def metrics_url(self) -> str:
        return f"http://{_hostport(self.settings.client_host, self.settings.metrics_port)}/metrics"

    @property
    def log_file(self) -> Path:
        return self.child.log_file

    @property
    def process(self):
        return self.child.process

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def is_running(self) -> bool:
        return self.child.is_running()

    # -- lifecycle ----------------------------------------------------------------------------
    def check_setup(self) -> Path:
        """Return the binary; raise TritonSetupError if anything the server needs is missing."""
        binary = check_installation()
        repo = self.settings.model_repository
        if not repo.is_dir():
            raise TritonSetupError(f"model repository {repo} is not a directory")
        missing = missing_backend_files(self.settings.resolved_backend_dir)
        if missing:
            raise TritonSetupError(
                f"backend directory {self.settings.resolved_backend_dir} is incomplete, missing: "
                + ", ".join(str(p) for p in missing)
            )
        return binary

    def start(self, assemble: bool = True) -> "TritonServer":
        """Launch the server (does not wait for readiness). `assemble` refreshes the backend dir."""
        if self.is_running():
            raise TritonError(f"tritonserver already running (pid {self.pid})")
        if assemble:
            assemble_backends(self.settings.resolved_backend_dir)
        binary = self.check_setup()
        env = server_environment()
        env.pop(ADMIN_KEY_ENV, None)  # the server has it on its command line; its model code needs none
        self.child.start(self.settings.argv(binary, shm_prefix=self.shm_prefix), env=env)
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Poll `/v2/health/ready` until 200. Raise TritonStartError (with the log tail) if the
        process exits first or `timeout` (default settings.startup_timeout_s) passes.

        With strict readiness a model that failed to load keeps the server unready forever, so
        once the server is live (HTTP starts after the initial loads) such failures are raised at
        once, with Triton's reasons, instead of after the timeout."""
        if self.child.process is None:
            raise TritonError("tritonserver was not started")
        url = f"{self.http_url}/v2/health/ready"

        def ready() -> bool:
            if http_status(url) == 200:
                return True
            failed = self._failed_models()
            if failed:
                raise TritonStartError(
                    "tritonserver is up but will not become ready (strict readiness) because "
                    f"these models failed to load: {'; '.join(failed)}. Fix them, or set "
                    "strict_readiness=False to serve the others."
                )
            return False

        try:
            self.child.wait_until(ready, self.settings.startup_timeout_s if timeout is None else timeout, f"ready at {url}")
        except ProcessStartError as exc:
            raise TritonStartError(str(exc)) from None

    def _failed_models(self) -> list[str]:
        """`name:version: reason` of the models Triton reports UNAVAILABLE with a reason,
        when it matters: strict readiness, server live, not in poll mode (which retries)."""
        if not self.settings.strict_readiness or self.settings.model_control_mode == "poll":
            return []
        if http_status(f"{self.http_url}/v2/health/live") != 200:
            return []
        try:
            request = urllib.request.Request(
                f"{self.http_url}/v2/repository/index", data=b"{}", method="POST",
                headers={"Content-Type": "application/json", **self.settings.admin_headers()},
            )
            with urllib.request.urlopen(request, timeout=5) as r:
                index = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return []
        return [
            f"{m.get('name')}:{m.get('version', '?')}: {m['reason'].strip().splitlines()[0]}"
            for m in index
            if m.get("state") == "UNAVAILABLE" and m.get("reason")
        ]

    def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the server and its python stubs (see ChildProcess.stop), then remove this server's
        leftover /dev/shm regions. Returns its exit code (None if never started); safe to call twice."""
        rc = self.child.stop(timeout)
        if self.child.process is not None:
            for path in _shm_files():
                if os.path.basename(path).startswith(self.shm_prefix):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
        return rc

    def log_tail(self, lines: int = 30) -> str:
        return self.child.log_tail(lines)

    def run_foreground(self, out=None) -> int:
        """Start, wait ready, print the URLs, block until SIGINT/SIGTERM (or the server dies),
        stop cleanly. Returns 0 on a requested stop, else the server's exit code."""
        out = out or sys.stdout
        stop_requested = threading.Event()

        def _on_signal(signum, _frame):
            stop_requested.set()

        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            self.wait_ready()
            print(f"Triton ready (pid {self.pid})", file=out)
            print(f"  HTTP     {self.http_url}", file=out)
            print(f"  gRPC     {self.grpc_url}", file=out)
            if self.settings.allow_metrics:
                print(f"  metrics  {self.metrics_url}", file=out)
            print(f"  log      {self.log_file}", file=out)
            print("Ctrl+C to stop.", file=out, flush=True)
            while not stop_requested.wait(0.5):
                if not self.is_running():
                    rc = self.process.returncode
                    print(f"tritonserver exited unexpectedly with code {rc}:\n{self.log_tail()}", file=out)
                    return rc or 1
            print("Stopping Triton...", file=out, flush=True)
            return 0
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _shm_files() -> set[str]:
    return set(glob.glob(str(SHM_DIR / f"{SHM_PREFIX}*")))


