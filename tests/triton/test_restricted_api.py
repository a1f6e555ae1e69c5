"""Triton's model-control API restricted to the admin key (`DJSERVE_TRITON_ADMIN_KEY`).

One real `tritonserver` of this module's own, started with the key from the environment, on a small
repository (the committed one plus an exported `recommender`, versions 1 and 2): load, unload and the
repository index need the key over HTTP and gRPC; inference, health, metadata and statistics do not;
the promotion tooling sends the key; the key never reaches a log, an error message or the
environment of the server's processes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil

import numpy as np
import psutil
import pytest
from pydantic import ValidationError

from djserve.triton.admin import (
    ADMIN_KEY_ENV,
    ADMIN_KEY_HEADER,
    GRPC_HEADER_PREFIX,
    admin_headers,
    restricted_api_args,
)
from djserve.triton.server import TritonServer, TritonSettings
from tests.conftest import copy_committed_repository, free_port, poll, skip_without_tritonserver

grpcclient = pytest.importorskip("tritonclient.grpc")
httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

skip_without_tritonserver()

KEY = "djserve-test-" + secrets.token_hex(16)
"""Unique per run, so finding it anywhere means it leaked."""
MODEL = "recommender"
VERSIONS = ["1", "2"]


# ---------------------------------------------------------------------------------------------
# Settings: flags, headers, validation (no server)
# ---------------------------------------------------------------------------------------------
def test_argv_restricts_model_repository_only_when_a_key_is_set(tmp_path):
    plain = TritonSettings(model_repository=tmp_path).argv("/bin/tritonserver")
    assert not [a for a in plain if "restricted" in a]

    keyed = TritonSettings(model_repository=tmp_path, admin_key=KEY).argv("/bin/tritonserver")
    assert [a for a in keyed if "restricted" in a] == [
        f"--http-restricted-api=model-repository:admin-key={KEY}",
        f"--grpc-restricted-protocol=model-repository:admin-key={KEY}",
    ]
    assert restricted_api_args(None) == [] and restricted_api_args("") == []
    assert admin_headers(KEY, "http") == {"admin-key": KEY}
    assert admin_headers(KEY, "grpc") == {"triton-grpc-protocol-admin-key": KEY}
    assert admin_headers(None) == {}


def test_key_comes_from_the_environment_and_is_masked(tmp_path, monkeypatch):
    from djserve.mlops.promotion import PromotionSettings

    monkeypatch.setenv(ADMIN_KEY_ENV, KEY)
    settings, promo = TritonSettings(model_repository=tmp_path), PromotionSettings()
    assert settings.admin_key.get_secret_value() == KEY == promo.admin_key.get_secret_value()
    for shown in (repr(settings), str(settings), repr(promo), str(settings.model_dump()), settings.model_dump_json()):
        assert KEY not in shown
    monkeypatch.setenv(ADMIN_KEY_ENV, "")  # empty = unset
    assert TritonSettings(model_repository=tmp_path).admin_key is None and PromotionSettings().admin_key is None


@pytest.mark.parametrize("bad", ["short-" + secrets.token_hex(2), "with a space " + secrets.token_hex(8),
                                 "tab\t" + secrets.token_hex(8), "non-ascii-é-" + secrets.token_hex(8)])
def test_an_invalid_key_is_refused_without_echoing_it(tmp_path, monkeypatch, bad):
    from djserve.mlops.promotion import PromotionSettings

    with pytest.raises(ValidationError) as direct:
        TritonSettings(model_repository=tmp_path, admin_key=bad)
    monkeypatch.setenv(ADMIN_KEY_ENV, bad)
    with pytest.raises(ValidationError) as from_env:
        PromotionSettings()
    for exc in (direct.value, from_env.value):
        assert ADMIN_KEY_ENV in str(exc)
        assert bad not in str(exc) and bad not in repr(exc)  # what a traceback or log line shows


# ---------------------------------------------------------------------------------------------
# A real server with the key
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from exporters.isolated import export_isolated

    root = tmp_path_factory.mktemp("restricted")
    repo = copy_committed_repository(root / "model_repository")
    export_isolated(MODEL, repo)
    shutil.copytree(repo / MODEL / "1", repo / MODEL / "2")  # a second version to switch between
    return root


@pytest.fixture(scope="module")
def server(workdir):
    # The key from the environment, as `djserve serve` gets it; log_verbose so the log says the most.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ADMIN_KEY_ENV, KEY)
        settings = TritonSettings(
            model_repository=workdir / "model_repository", backend_dir=workdir / "backends",
            log_file=workdir / "triton.log", http_port=free_port(), grpc_port=free_port(),
            metrics_port=free_port(), load_models=[MODEL], log_verbose=1,
        )
        srv = TritonServer(settings)
        srv.start()  # with the variable set: start() must keep it out of the server's environment
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(params=["http", "grpc"])
def proto(request, server):
    """(protocol, client without headers, the admin header of that protocol)."""
    if request.param == "http":
        client = httpclient.InferenceServerClient(server.http_url.removeprefix("http://"))
    else:
        client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        yield request.param, client, admin_headers(KEY, request.param)
    finally:
        client.close()


def ready_versions(server) -> list[str]:
    with httpclient.InferenceServerClient(server.http_url.removeprefix("http://")) as c:
        return [v for v in VERSIONS if c.is_model_ready(MODEL, v)]


def assert_refused(exc: InferenceServerException, protocol: str) -> None:
    if protocol == "http":
        assert exc.status() == "403"
        assert exc.message() == f"This API is restricted, expecting header '{ADMIN_KEY_HEADER}'"
    else:  # Triton 2.51 answers a restricted gRPC call with UNAVAILABLE
        assert exc.status() == "StatusCode.UNAVAILABLE"
        expected = f"This protocol is restricted, expecting header '{GRPC_HEADER_PREFIX}{ADMIN_KEY_HEADER}'"
        assert expected in exc.message()
    assert KEY not in str(exc) and KEY not in repr(exc)


def test_model_control_without_the_key_is_refused(server, proto):
    protocol, client, header = proto
    assert ready_versions(server) == VERSIONS
    wrong = {name: "not-the-key-" + secrets.token_hex(8) for name in header}
    (grpc_name,) = admin_headers(KEY, "grpc")
    attempts = [
        lambda: client.unload_model(MODEL),
        lambda: client.unload_model(MODEL, headers=wrong),
        lambda: client.load_model(MODEL),
        lambda: client.get_model_repository_index(),
        # the HTTP header name over gRPC (without Triton's prefix) is not enough
        lambda: client.unload_model(MODEL, headers={ADMIN_KEY_HEADER: KEY} if protocol == "grpc" else {grpc_name: KEY}),
    ]
    for attempt in attempts:
        with pytest.raises(InferenceServerException) as refused:
            attempt()
        assert_refused(refused.value, protocol)
    assert ready_versions(server) == VERSIONS  # nothing was unloaded


def test_model_control_with_the_key_works(server, proto):
    protocol, client, header = proto
    index = client.get_model_repository_index(headers=header)
    if protocol == "grpc":
        index = [{"name": m.name, "version": m.version, "state": m.state} for m in index.models]
    assert sorted(m["version"] for m in index if m["name"] == MODEL and m.get("state") == "READY") == VERSIONS
    try:
        client.unload_model(MODEL, headers=header)
        assert poll(lambda: ready_versions(server) == [], 30), ready_versions(server)
        client.load_model(MODEL, headers=header)
        assert ready_versions(server) == VERSIONS
    finally:
        if ready_versions(server) != VERSIONS:
            client.load_model(MODEL, headers=header)


def test_inference_health_metadata_and_statistics_need_no_key(server):
    from clients import TritonModelClient
    from clients.triton import AsyncTritonModelClient
    from djserve.specs import EXPORTED

    spec = EXPORTED[MODEL]
    feeds = spec.random_inputs(3, spec.parity_axes[0], np.random.default_rng(0))
    outputs = []
    for protocol, url in (("grpc", server.grpc_url), ("http", server.http_url.removeprefix("http://"))):
        with TritonModelClient(url, protocol=protocol) as c:
            assert c.is_ready() and c.is_ready(MODEL, 1) and c.is_ready(MODEL, 2)
            out = c.infer(MODEL, feeds, version=2)
            assert out["score"].shape == (3, 1) and np.all(np.isfinite(out["score"]))
            outputs.append(out["score"])
            assert c.statistics(MODEL)["model_stats"]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6)

    with httpclient.InferenceServerClient(server.http_url.removeprefix("http://")) as h:
        assert h.is_server_live() and h.is_server_ready()
        assert h.get_model_metadata(MODEL)["name"] == MODEL
        assert h.get_model_config(MODEL)["name"] == MODEL
    with grpcclient.InferenceServerClient(server.grpc_url) as g:
        assert g.is_server_live() and g.get_model_metadata(MODEL).name == MODEL

    async def gateway_calls():  # what the gateway asks (readiness per version, statistics, inference)
        client = AsyncTritonModelClient(server.grpc_url)
        try:
            ready = [await client.is_ready(), await client.is_ready(MODEL, 1), await client.is_ready(MODEL, 2)]
            stats = await client.statistics(MODEL)
            out = await client.infer(MODEL, feeds, version=1)
            return ready, len(stats.model_stats), out["score"].shape
        finally:
            await client.close()

    assert asyncio.run(gateway_calls()) == ([True, True, True], 2, (3, 1))


def test_triton_control_with_the_key_loads_and_unloads(server):
    from djserve.mlops.triton_control import TritonControl

    control = TritonControl(server.http_url, admin_key=KEY)
    try:
        control.check_access()
        assert control.loaded_versions(MODEL) == [1, 2]
        control.load(MODEL, [2])  # what `complete` does: the older version goes
        assert control.loaded_versions(MODEL) == [2] and ready_versions(server) == ["2"]
        control.unload(MODEL)
        assert poll(lambda: control.loaded_versions(MODEL) == [], 30)
        control.load(MODEL, [1, 2])
        assert control.loaded_versions(MODEL) == [1, 2]
        assert control.smoke(MODEL, 1)["score"].shape == (2, 1)
    finally:
        if ready_versions(server) != VERSIONS:
            control.load(MODEL, [1, 2])
        control.close()


@pytest.mark.parametrize("key", [None, "wrong-key-" + secrets.token_hex(8)])
def test_triton_control_without_the_key_gets_a_clear_error(server, key):
    from djserve.mlops.triton_control import TritonAccessDenied, TritonControl

    control = TritonControl(server.http_url, admin_key=key)
    try:
        for call in (control.check_access, lambda: control.loaded_versions(MODEL), lambda: control.load(MODEL, [2]),
                     lambda: control.unload(MODEL), lambda: control.pin_ensembles({"sentiment": 1})):
            with pytest.raises(TritonAccessDenied) as denied:
                call()
            message = str(denied.value)
            assert ADMIN_KEY_ENV in message and "restricted" in message
            assert ("is missing" if key is None else "was refused") in message
            assert KEY not in message and (key is None or key not in message)
        assert control.smoke(MODEL, 2)["score"].shape == (2, 1)  # inference needs no key
    finally:
        control.close()
    assert ready_versions(server) == VERSIONS


def test_promoter_without_the_key_refuses_before_changing_anything(server, tmp_path, monkeypatch):
    from djserve.mlops.promotion import POLICY_FILE, Promoter, PromotionError, PromotionSettings
    from djserve.settings import Settings

    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    state = tmp_path / "state"
    promoter = Promoter(Settings(repository=server.settings.model_repository, state_dir=state),
                        PromotionSettings(triton_http_url=server.http_url), log=lambda line: None)
    try:
        with pytest.raises(PromotionError, match=ADMIN_KEY_ENV):
            promoter.restore()
        assert not (state / POLICY_FILE).exists()  # refused before the policy was materialized
        assert ready_versions(server) == VERSIONS

        monkeypatch.setenv(ADMIN_KEY_ENV, KEY)  # the same variable the server was started with
        keyed = Promoter(Settings(repository=server.settings.model_repository, state_dir=state),
                         PromotionSettings(triton_http_url=server.http_url), log=lambda line: None)
        keyed._check_access()
        assert keyed.triton.loaded_versions(MODEL) == [1, 2]
        keyed.triton.close()
    finally:
        promoter.triton.close()


def test_without_a_key_nothing_is_restricted(workdir, tmp_path, monkeypatch):
    """No DJSERVE_TRITON_ADMIN_KEY: the promotion tooling works as before, with or without a key of its own."""
    from djserve.mlops.triton_control import TritonControl

    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    settings = TritonSettings(model_repository=workdir / "model_repository", backend_dir=workdir / "backends",
                              log_file=tmp_path / "t.log", http_port=free_port(), grpc_port=free_port(),
                              metrics_port=free_port(), load_models=[MODEL])
    assert settings.admin_key is None and settings.admin_headers() == {}
    with TritonServer(settings) as open_server:
        with grpcclient.InferenceServerClient(open_server.grpc_url) as g:
            assert any(m.name == MODEL for m in g.get_model_repository_index().models)
        for key in (None, KEY):  # a key the server does not ask for is ignored
            control = TritonControl(open_server.http_url, admin_key=key)
            try:
                control.check_access()
                control.load(MODEL, [1])
                assert control.loaded_versions(MODEL) == [1]
                control.load(MODEL, [1, 2])
                assert control.loaded_versions(MODEL) == [1, 2]
            finally:
                control.close()


def test_a_failed_model_is_reported_at_start_with_the_key(workdir, tmp_path):
    """wait_ready reads the repository index (restricted) to name models that failed to load."""
    from djserve.triton import TritonStartError

    repo = tmp_path / "model_repository"
    (repo / MODEL / "1").mkdir(parents=True)
    shutil.copy(workdir / "model_repository" / MODEL / "config.pbtxt", repo / MODEL)
    (repo / MODEL / "1" / "model.onnx").write_bytes(b"not an onnx model")
    settings = TritonSettings(model_repository=repo, backend_dir=workdir / "backends", log_file=tmp_path / "t.log",
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                              load_models=[MODEL], admin_key=KEY, startup_timeout_s=30)
    with pytest.raises(TritonStartError) as failed:
        with TritonServer(settings):
            pass
    message = str(failed.value)
    assert "failed to load" in message and f"{MODEL}:1:" in message, message  # not a timeout
    assert KEY not in message


def test_the_key_is_in_no_log_and_no_process_environment(server):
    # One refused and one accepted call first, so the log has seen both.
    with httpclient.InferenceServerClient(server.http_url.removeprefix("http://")) as h:
        with pytest.raises(InferenceServerException):
            h.unload_model(MODEL, headers={ADMIN_KEY_HEADER: "wrong-" + secrets.token_hex(8)})
        assert len(h.get_model_repository_index(headers=admin_headers(KEY))) > 0
    log = server.log_file.read_text(errors="replace")
    assert "HTTP request: 2 /v2/repository/index" in log  # the verbose log records the requests...
    assert KEY not in log  # ...but never the key
    assert KEY not in server.log_tail(200)

    # The server got the key on its command line only: neither it nor its python stubs (model code)
    # carry DJSERVE_TRITON_ADMIN_KEY in their environment.
    proc = psutil.Process(server.pid)
    assert any(KEY in a for a in proc.cmdline())
    family = [proc, *proc.children(recursive=True)]
    assert len(family) >= 3  # the server and the stubs of the two loaded versions
    for p in family:
        environ = p.environ()
        assert ADMIN_KEY_ENV not in environ and KEY not in "".join(environ.values()), p.cmdline()[:1]
    assert os.environ.get(ADMIN_KEY_ENV) != KEY  # the fixture's variable is gone again
