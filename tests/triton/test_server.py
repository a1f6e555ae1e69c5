"""The embedded Triton: backend assembly, the python-based onnxruntime backend, server lifecycle.

Runs the real `tritonserver` from the nvidia-pytriton wheel on free ports (never 8000-8002).
One module-scoped server serves most tests; a few short-lived ones test start-up and shutdown.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import psutil
import pytest
from onnx import TensorProto, helper

from djserve.triton import backends
from djserve.triton.backends import (
    STUB_NAME,
    TritonSetupError,
    assemble_backends,
    server_environment,
)
from djserve.process import free_port
from djserve.specs.base import BACKGROUND_NICE, CPU_NICE_PARAMETER
from djserve.triton.server import SHM_DIR, SHM_PREFIX, TritonServer, TritonSettings, TritonStartError
from tests.conftest import skip_without_tritonserver

grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")

skip_without_tritonserver()

MODEL_PY = Path(backends.__file__).parent / "onnxruntime_backend" / "model.py"
TABLE = np.arange(10, dtype=np.float32) * 10  # the `gather` model's lookup table


# ---------------------------------------------------------------------------------------------
# A tiny model repository
# ---------------------------------------------------------------------------------------------
def _onnx_bytes(graph) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime of the last years
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_onnx() -> bytes:
    """y = x * 2 + 1, x: FP32 [batch, 4]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])]
    consts = [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
              helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])]
    return _onnx_bytes(helper.make_graph(nodes, "tiny", [x], [y], consts))


def gather_onnx() -> bytes:
    """val = TABLE[idx], idx: INT64 [batch, length] with a dynamic length; ORT raises on idx >= 10."""
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", "length"])
    val = helper.make_tensor_value_info("val", TensorProto.FLOAT, ["batch", "length"])
    table = helper.make_tensor("table", TensorProto.FLOAT, [10], TABLE.tolist())
    node = helper.make_node("Gather", ["table", "idx"], ["val"], axis=0)
    return _onnx_bytes(helper.make_graph([node], "gather", [idx], [val], [table]))


CONFIG = """name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input {{ name: "{inp}" data_type: {in_type} dims: [{dim}] }}
output {{ name: "{out}" data_type: TYPE_FP32 dims: [{dim}] }}
dynamic_batching {{ max_queue_delay_microseconds: 20000 }}
instance_group {{ count: 1 kind: KIND_AUTO }}
parameters {{ key: "intra_op_thread_count" value {{ string_value: "1" }} }}
parameters {{ key: "inter_op_thread_count" value {{ string_value: "1" }} }}
"""


def add_model(repo: Path, name: str, onnx_bytes: bytes, kind: str = "tiny") -> None:
    fields = dict(inp="x", in_type="TYPE_FP32", out="y", dim=4) if kind == "tiny" else \
        dict(inp="idx", in_type="TYPE_INT64", out="val", dim=-1)
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "1" / "model.onnx").write_bytes(onnx_bytes)
    (repo / name / "config.pbtxt").write_text(CONFIG.format(name=name, **fields))


def settings_for(repo: Path, tmp: Path, **overrides) -> TritonSettings:
    return TritonSettings(
        model_repository=repo,
        backend_dir=tmp / "backends",
        log_file=tmp / f"triton-{free_port()}.log",
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        startup_timeout_s=90,
        **overrides,
    )


def own_shm(server: TritonServer) -> list[str]:
    return [p.name for p in SHM_DIR.glob(f"{server.shm_prefix}*")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("triton")


@pytest.fixture(scope="module")
def server(workdir):
    """tiny + gather + a model with a garbage model.onnx. Not strict: the broken one never loads."""
    repo = workdir / "repo"
    add_model(repo, "tiny", tiny_onnx())
    add_model(repo, "gather", gather_onnx(), kind="gather")
    add_model(repo, "broken", b"this is not an onnx model")
    add_model(repo, "background", tiny_onnx())
    with (repo / "background" / "config.pbtxt").open("a") as f:
        f.write(f'parameters {{ key: "{CPU_NICE_PARAMETER}" value {{ string_value: "{BACKGROUND_NICE}" }} }}\n')
    with TritonServer(settings_for(repo, workdir, strict_readiness=False)) as srv:
        yield srv


@pytest.fixture
def grpc(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    yield client
    client.close()


def grpc_infer(url: str, model: str, name: str, array: np.ndarray, out: str):
    client = grpcclient.InferenceServerClient(url)
    try:
        inp = grpcclient.InferInput(name, list(array.shape), "FP32" if array.dtype == np.float32 else "INT64")
        inp.set_data_from_numpy(array)
        return client.infer(model, [inp]).as_numpy(out)
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------
def test_model_answers_over_grpc_and_http(server, grpc):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)

    y = grpc_infer(server.grpc_url, "tiny", "x", x, "y")
    assert y.dtype == np.float32 and y.shape == (3, 4)
    np.testing.assert_allclose(y, x * 2 + 1)

    client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    try:
        inp = httpclient.InferInput("x", [3, 4], "FP32")
        inp.set_data_from_numpy(x, binary_data=False)
        y = client.infer("tiny", [inp]).as_numpy("y")
    finally:
        client.close()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, x * 2 + 1)


def test_a_background_model_runs_at_a_lower_cpu_priority_and_the_others_do_not(server, grpc):
    """A spec with background=True renders cpu_nice; the python-based backend's stub (every thread of
    it, ONNX Runtime's pool included) takes it, so uploads yield the cores to real-time models."""
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(np.ones((1, 4), np.float32))
    for model in ("tiny", "background"):
        grpc.infer(model, [x])  # both loaded and have run

    def thread_nices(model: str) -> set[int]:
        stub = next(p for p in psutil.Process(server.pid).children(recursive=True)
                    if f"/{model}/1/model.onnx" in " ".join(p.cmdline()))
        return {int(Path(f"/proc/{stub.pid}/task/{t.id}/stat").read_text().rsplit(")", 1)[1].split()[16])
                for t in stub.threads()}

    base = os.getpriority(os.PRIO_PROCESS, server.pid)
    assert thread_nices("tiny") == {base}
    assert thread_nices("background") == {base + BACKGROUND_NICE}


def test_metrics_served_on_their_port(server, grpc):
    import urllib.request

    grpc_infer(server.grpc_url, "tiny", "x", np.zeros((1, 4), np.float32), "y")
    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        text = r.read().decode()
    assert 'nv_inference_request_success{model="tiny"' in text


def _tiny_stats(client) -> tuple[int, int, dict[int, int]]:
    stats = client.get_inference_statistics("tiny", as_json=True)["model_stats"][0]
    batches = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats.get("batch_stats", [])}
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0)), batches


def test_concurrent_requests_are_batched(server, grpc):
    n = 16
    for _ in range(3):  # the batcher depends on arrival times; a batch > 1 must form within 3 rounds
        inf0, exe0, batches0 = _tiny_stats(grpc)
        barrier = threading.Barrier(n)
        clients = [grpcclient.InferenceServerClient(server.grpc_url) for _ in range(n)]

        def one(i: int) -> np.ndarray:
            inp = grpcclient.InferInput("x", [1, 4], "FP32")
            inp.set_data_from_numpy(np.full((1, 4), i, np.float32))
            barrier.wait()
            return clients[i].infer("tiny", [inp]).as_numpy("y")

        try:
            with ThreadPoolExecutor(n) as pool:
                results = list(pool.map(one, range(n)))
        finally:
            for c in clients:
                c.close()
        for i, y in enumerate(results):  # every request got ITS OWN rows back
            np.testing.assert_allclose(y, np.full((1, 4), 2 * i + 1, np.float32))

        inf1, exe1, batches1 = _tiny_stats(grpc)
        assert inf1 - inf0 == n
        grew = {b for b, count in batches1.items() if count > batches0.get(b, 0)}
        assert exe1 - exe0 == sum(batches1.get(b, 0) - batches0.get(b, 0) for b in grew)
        if exe1 - exe0 < n:
            assert max(grew) > 1
            return
    pytest.fail(f"{n} concurrent requests never formed a batch > 1: batch stats {batches1}")


def test_dynamic_lengths_and_one_bad_value(server):
    """Concurrent requests of different lengths (separate shape groups) and one out-of-range
    index: every good request gets its rows, only the bad one gets an error."""
    requests = [np.array([[i % 10] * (1 + i % 3)], np.int64) for i in range(12)]
    requests[5] = np.array([[1, 99]], np.int64)  # same shape as other requests: batched with them
    barrier = threading.Barrier(len(requests))

    def one(i: int):
        barrier.wait()
        try:
            return grpc_infer(server.grpc_url, "gather", "idx", requests[i], "val")
        except Exception as e:  # noqa: BLE001
            return e

    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(one, range(len(requests))))
    for i, (idx, got) in enumerate(zip(requests, results)):
        if i == 5:
            assert isinstance(got, Exception), got
            assert "gather" in str(got) and "99" in str(got)
        else:
            assert not isinstance(got, Exception), got
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, TABLE[idx])
    # and the model still serves
    np.testing.assert_array_equal(grpc_infer(server.grpc_url, "gather", "idx", np.array([[3]]), "val"), [[30.0]])


def test_wrong_shape_is_rejected_and_server_keeps_serving(server, grpc):
    bad = grpcclient.InferInput("x", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(Exception, match="(?i)shape"):
        grpc.infer("tiny", [bad])
    assert server.is_running()
    np.testing.assert_allclose(grpc_infer(server.grpc_url, "tiny", "x", np.ones((2, 4), np.float32), "y"), 3.0)


def test_broken_model_does_not_kill_the_server(server, grpc):
    assert server.is_running()
    assert grpc.is_server_live()
    assert grpc.is_model_ready("tiny") and grpc.is_model_ready("gather")
    assert not grpc.is_model_ready("broken")
    index = {m.name: m for m in grpc.get_model_repository_index().models}
    assert index["broken"].state == "UNAVAILABLE"
    assert "broken/1/model.onnx" in index["broken"].reason


# ---------------------------------------------------------------------------------------------
# Start-up failures and shutdown
# ---------------------------------------------------------------------------------------------
def test_strict_readiness_fails_fast_on_a_broken_model(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "tiny", tiny_onnx())
    add_model(repo, "broken", b"\x00garbage")
    srv = TritonServer(settings_for(repo, tmp_path, strict_readiness=True))
    with pytest.raises(TritonStartError, match="broken:1"):
        with srv:
            pass
    assert not srv.is_running()


def test_process_that_dies_at_once_raises_start_error(tmp_path):
    (tmp_path / "repo").mkdir()
    srv = TritonServer(settings_for(tmp_path / "repo", tmp_path, extra_args=["--no-such-flag=1"]))
    srv.start()
    try:
        with pytest.raises(TritonStartError, match="exited with code") as info:
            srv.wait_ready(timeout=60)
        assert "no-such-flag" in str(info.value)  # the log tail explains why
    finally:
        srv.stop()


def test_stop_leaves_no_process_and_no_shared_memory(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "tiny", tiny_onnx())
    shm_before = {p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}*")}
    srv = TritonServer(settings_for(repo, tmp_path))  # strict readiness: tiny must be READY
    with srv:
        x = np.ones((1, 4), np.float32)
        np.testing.assert_allclose(grpc_infer(srv.grpc_url, "tiny", "x", x, "y"), 3.0)
        family = [psutil.Process(srv.pid), *psutil.Process(srv.pid).children(recursive=True)]
        assert any(STUB_NAME in " ".join(p.cmdline()) for p in family[1:]), "no python stub running"
        assert own_shm(srv), "python backend created no shared memory with our prefix"
        pgid = os.getpgid(srv.pid)
        assert pgid == srv.pid != os.getpgid(0)  # its own process group
    assert srv.process.returncode == 0
    for proc in family:
        assert not proc.is_running(), f"{proc.pid} still alive after stop"
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert own_shm(srv) == []
    new = {p.name for p in SHM_DIR.glob(f"{SHM_PREFIX}*")} - shm_before
    assert not any(name.startswith(srv.shm_prefix) for name in new)
    assert srv.stop() == 0  # idempotent


def test_run_foreground_stops_cleanly_on_sigint(tmp_path):
    (tmp_path / "repo").mkdir()  # empty repository: ready in a fraction of a second
    s = settings_for(tmp_path / "repo", tmp_path)
    code = (
        "import sys; from djserve.triton import TritonServer, TritonSettings\n"
        f"sys.exit(TritonServer(TritonSettings.model_validate_json({s.model_dump_json()!r})).run_foreground())\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl+C" in line:
                break
        text = "".join(lines)
        assert f"127.0.0.1:{s.grpc_port}" in text and f"http://127.0.0.1:{s.http_port}" in text, text
        server_pid = int(text.split("(pid ")[1].split(")")[0])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE


# ---------------------------------------------------------------------------------------------
# Setup checks, flags, environment
# ---------------------------------------------------------------------------------------------
def test_missing_binary_is_a_setup_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "tritonserver_binary", lambda: tmp_path / "nope" / "tritonserver")
    (tmp_path / "repo").mkdir()
    srv = TritonServer(settings_for(tmp_path / "repo", tmp_path))
    with pytest.raises(TritonSetupError, match="tritonserver binary"):
        srv.start()
    assert srv.process is None


def test_missing_stub_is_a_setup_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "python_tag", lambda: "3.99")
    with pytest.raises(TritonSetupError, match=r"stub for Python 3\.99.*3\.11"):
        assemble_backends(tmp_path / "backends")
    (tmp_path / "repo").mkdir()
    srv = TritonServer(settings_for(tmp_path / "repo", tmp_path))
    with pytest.raises(TritonSetupError, match="stub"):
        srv.start()
    assert srv.process is None


def test_missing_python_backend_lib_is_a_setup_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "python_backend_dir", lambda: tmp_path / "empty")
    with pytest.raises(TritonSetupError, match="libtriton_python.so"):
        backends.check_installation()


def test_incomplete_backend_dir_is_a_setup_error(tmp_path):
    (tmp_path / "repo").mkdir()
    srv = TritonServer(settings_for(tmp_path / "repo", tmp_path))
    with pytest.raises(TritonSetupError, match="onnxruntime/model.py"):
        srv.start(assemble=False)


def test_assemble_backends_is_complete_and_idempotent(tmp_path):
    target = assemble_backends(tmp_path / "b")
    files = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert files == {"python/libtriton_python.so", "python/triton_python_backend_utils.py",
                     f"python/{STUB_NAME}", "onnxruntime/model.py"}
    assert os.access(target / "python" / STUB_NAME, os.X_OK)
    assert (target / "onnxruntime" / "model.py").read_bytes() == MODEL_PY.read_bytes()
    inodes = {f: (target / f).stat().st_ino for f in files}
    assemble_backends(target)
    assert {f: (target / f).stat().st_ino for f in files} == inodes  # nothing re-copied
    (target / "onnxruntime" / "model.py").write_text("# stale")
    assemble_backends(target)
    assert (target / "onnxruntime" / "model.py").read_bytes() == MODEL_PY.read_bytes()


def test_argv_binds_everything_to_the_host(tmp_path):
    s = TritonSettings(model_repository=tmp_path, backend_dir=tmp_path / "b")
    argv = s.argv("/bin/tritonserver")
    assert argv[0] == "/bin/tritonserver"
    for flag in ("--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                 "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002",
                 "--model-control-mode=explicit", "--load-model=*", "--strict-readiness=true",
                 "--pinned-memory-pool-byte-size=0", "--allow-gpu-metrics=false",
                 "--exit-on-error=false", "--disable-auto-complete-config",
                 f"--backend-directory={(tmp_path / 'b').resolve()}",
                 f"--model-repository={tmp_path.resolve()}"):
        assert flag in argv
    default = TritonSettings(model_repository=tmp_path / "models")
    assert default.resolved_backend_dir == tmp_path.resolve() / ".djserve" / "backends"
    two = TritonSettings(model_repository=tmp_path, load_models=["a", "b"]).argv()
    assert [a for a in two if a.startswith("--load-model")] == ["--load-model=a", "--load-model=b"]


def test_the_response_cache_flags_follow_its_size(tmp_path):
    from djserve.triton.backends import embedded_cache_dir

    cached = TritonSettings(model_repository=tmp_path, response_cache_mb=2).argv("/bin/tritonserver")
    assert "--cache-config=local,size=2097152" in cached
    assert f"--cache-directory={embedded_cache_dir().resolve()}" in cached
    assert (embedded_cache_dir() / "local" / "libtritoncache_local.so").is_file()
    own = TritonSettings(model_repository=tmp_path, cache_directory=tmp_path / "caches").argv("/bin/tritonserver")
    assert f"--cache-directory={(tmp_path / 'caches').resolve()}" in own
    off = TritonSettings(model_repository=tmp_path, response_cache_mb=0).argv("/bin/tritonserver")
    assert not [a for a in off if a.startswith("--cache")]


def test_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DJSERVE_TRITON_MODEL_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("DJSERVE_TRITON_HTTP_PORT", "18123")
    monkeypatch.setenv("DJSERVE_TRITON_LOAD_MODELS", '["tiny"]')
    s = TritonSettings()
    assert s.http_port == 18123 and s.load_models == ["tiny"] and s.model_repository == tmp_path


def test_server_environment():
    import sysconfig

    env = server_environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/x"})
    libs = env["LD_LIBRARY_PATH"].split(os.pathsep)
    assert libs[0].endswith("nvidia_pytriton.libs") and Path(libs[0]).is_dir()
    assert sysconfig.get_config_var("LIBDIR") in libs and libs[-1] == "/opt/x"
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


# ---------------------------------------------------------------------------------------------
# The backend's execute(), in-process with a stand-in for triton_python_backend_utils
# ---------------------------------------------------------------------------------------------
class _FakePbUtils:
    class TritonError:
        def __init__(self, message):
            self.message = message

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.outputs = {t.name: t.array for t in output_tensors}
            self.error = error

    @staticmethod
    def triton_string_to_numpy(s):
        return {"TYPE_FP32": np.float32, "TYPE_FP64": np.float64, "TYPE_INT64": np.int64}[s]

    @staticmethod
    def get_input_tensor_by_name(request, name):
        if name not in request.inputs:
            return None
        return type("T", (), {"as_numpy": lambda self, a=request.inputs[name]: a})()


class _Request:
    def __init__(self, **inputs):
        self.inputs = inputs

    def requested_output_names(self):
        return []


@pytest.fixture
def backend_model(tmp_path, monkeypatch):
    """The python-based onnxruntime backend's module, with a fake pb_utils, and a gather model at tmp_path/1."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _FakePbUtils)
    spec = importlib.util.spec_from_file_location("djserve_onnx_backend_model", MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.onnx").write_bytes(gather_onnx())
    return module


def test_execute_batches_groups_and_isolates_errors(tmp_path, backend_model):
    module = backend_model
    config = {"name": "gather", "max_batch_size": 8,
              "input": [{"name": "idx", "data_type": "TYPE_INT64"}],
              "output": [{"name": "val", "data_type": "TYPE_FP64"}],  # cast from the graph's float32
              "parameters": {"intra_op_thread_count": {"string_value": "1"}}}
    import json

    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"})
    runs = []
    real_run = model.session.run
    model.session = type("S", (), {"run": lambda self, o, f: runs.append(f) or real_run(o, f)})()

    reqs = [np.array([[1, 2]]), np.array([[3]]), np.array([[4, 5], [6, 7]]), np.array([[9]]), np.array([[0, 99]])]
    responses = model.execute([_Request(idx=r) for r in reqs])
    assert len(responses) == len(reqs)
    for i, (r, resp) in enumerate(zip(reqs, responses)):
        if i == 4:
            assert resp.error is not None and "99" in resp.error.message
        else:
            assert resp.error is None
            assert resp.outputs["val"].dtype == np.float64
            np.testing.assert_array_equal(resp.outputs["val"], TABLE[r])
    # [1,2], [4,5;6,7], [0,99] share the shape [*, 2]: one batched run (fails: 99), then one run
    # each (1, 2, 1); [3] and [9] share [*, 1]: one run of batch 2.
    batch_sizes = sorted(f["idx"].shape[0] for f in runs)
    assert batch_sizes == [1, 1, 2, 2, 4]


def test_idle_intra_op_threads_do_not_spin_unless_the_config_asks(tmp_path, backend_model):
    """Spinning ORT threads burned ~46 ms of a core per call of the 0.2 ms beat tracker on a shared CPU."""
    import json

    module = backend_model

    def spinning(parameters: dict) -> str:
        config = {"name": "gather", "max_batch_size": 8, "input": [{"name": "idx", "data_type": "TYPE_INT64"}],
                  "output": [{"name": "val", "data_type": "TYPE_FP32"}],
                  "parameters": {k: {"string_value": v} for k, v in parameters.items()}}
        model = module.TritonPythonModel()
        model.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"})
        return model.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning({"intra_op_thread_count": "2"}) == "0"
    assert spinning({"intra_op_thread_count": "2", "allow_spinning": "1"}) == "1"
