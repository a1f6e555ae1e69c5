"""Shared fixtures: one exported repository and one real Triton for the whole session."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from djserve.process import free_port
from djserve.quiet import quiet_frameworks
from djserve.settings import PROJECT_ROOT

quiet_frameworks()

COMMITTED_REPOSITORY = PROJECT_ROOT / "model_repository"


def poll(check, seconds: float) -> bool:
    """True as soon as `check()` is; False after `seconds` (a bound on waiting, not a timing assertion)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def skip_without_tritonserver() -> None:
    """Skip the calling test module where the nvidia-pytriton wheel (the tritonserver binary) is absent."""
    from djserve.triton.backends import TritonSetupError, check_installation

    try:
        check_installation()
    except TritonSetupError as e:  # pragma: no cover - only where the wheel is absent
        pytest.skip(f"tritonserver not available: {e}", allow_module_level=True)


def copy_committed_repository(target: Path) -> Path:
    """The repository as committed (configs, python steps, ensembles), without exported versions."""
    from djserve.specs import EXPORTED

    def ignore(directory: str, names: list[str]) -> list[str]:
        if Path(directory).name in EXPORTED:
            return [n for n in names if n.isdigit() or n.startswith(".staging")]
        return [n for n in names if n == "__pycache__"]

    shutil.copytree(COMMITTED_REPOSITORY, target, ignore=ignore)
    return target


@pytest.fixture(scope="session")
def exported_repository(tmp_path_factory) -> Path:
    """Every model exported once (seeded reference weights) into a fresh repository."""
    from djserve.specs import EXPORTED
    from exporters.isolated import export_isolated

    repo = copy_committed_repository(tmp_path_factory.mktemp("exported") / "model_repository")
    for name in EXPORTED:
        export_isolated(name, repo)
    return repo


@pytest.fixture(scope="session")
def triton(exported_repository, tmp_path_factory):
    """A real tritonserver on free loopback ports with every model and ensemble loaded."""
    from djserve.triton import TritonServer, TritonSettings

    settings = TritonSettings(
        model_repository=exported_repository,
        backend_dir=tmp_path_factory.mktemp("backends"),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    with TritonServer(settings, log_file=tmp_path_factory.mktemp("logs") / "triton.log") as server:
        yield server


@pytest.fixture(autouse=True)
def _session_triton_alive(request):
    """Restart the session's Triton, on its ports, if an earlier test left it dead. Triton 2.51 can
    segfault when loading a model's new version reloads an ensemble built on it (a Triton bug; seen
    once in tests/e2e/test_routing.py); as `djserve serve`'s supervisor does in production, the
    server comes back, so one crash fails at most the test it happened in, not every test after it."""
    if "triton" in request.fixturenames:
        server = request.getfixturevalue("triton")
        if not server.is_running():
            warnings.warn(f"the session's tritonserver had died; restarting it. Its log ends:\n{server.log_tail(15)}")
            server.stop()
            server.start()
            server.wait_ready()
    yield


@pytest.fixture(params=["grpc", "http"])
def client(request, triton):
    from clients import TritonModelClient

    url = triton.grpc_url if request.param == "grpc" else triton.http_url.removeprefix("http://")
    with TritonModelClient(url, protocol=request.param) as c:
        yield c


#: Small limits so the bad-input tests stay cheap; the defaults are in bentos/settings.py.
GATEWAY_TEST_LIMITS = {
    "DJSERVE_GATEWAY_MAX_AUDIO_SECONDS": "600",
    "DJSERVE_GATEWAY_MAX_UPLOAD_MB": "16",
    "DJSERVE_GATEWAY_MAX_TEXT_CHARS": "500",
    "DJSERVE_GATEWAY_MAX_BATCH_MESSAGES": "64",
    "DJSERVE_GATEWAY_TRITON_TIMEOUT_S": "30",
}


ADMIN_TOKEN = "test-admin-token"
"""The /admin/* bearer token every test gateway is started with."""

CI_LATENCY_SLACK_S = 0.25
"""Latency slack of the online gate in the end-to-end promotion tests: Triton, the gateway and the load
share two cores there, and a scheduling burst that happens to land on the canary's requests is not a
regression of the model. The latency gate's power is proven in tests/mlops/test_gate_simulation.py."""


def start_gateway(triton_grpc_url: str, repository: Path, state: Path, **extra_env: str):
    """A real `bentoml serve` of the gateway on a free port (context manager: ready on enter)."""
    from djserve.gateway import GatewayServer
    from djserve.stack import gateway_environment

    env = gateway_environment(repository, state, ADMIN_TOKEN) | GATEWAY_TEST_LIMITS | extra_env
    return GatewayServer(triton_grpc_url, state / "gateway.log", port=free_port(), env=env)


def local_stack(repository: Path, state: Path, replicas: int = 1, gateways: int = 1, on_triton_ready=None, **gateway_env: str):
    """The tests' Stack: Triton replica(s) and gateway(s) on free ports with the test admin token and
    input limits; a context manager (started and ready on enter, stopped on exit)."""
    from djserve.stack import Stack

    return Stack.local(repository, state, replicas=replicas, gateways=gateways, admin_token=ADMIN_TOKEN,
                       gateway_env=GATEWAY_TEST_LIMITS | gateway_env, on_triton_ready=on_triton_ready, log=lambda line: None)


@pytest.fixture(scope="session")
def gateway(triton, exported_repository, tmp_path_factory):
    state = tmp_path_factory.mktemp("gateway")
    with start_gateway(triton.grpc_url, exported_repository, state) as gw:
        gw.policy_file = state / "traffic_policy.json"
        yield gw
