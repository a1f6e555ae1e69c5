"""Triton's response cache on the real server: enabled from the specs, hits counted per version, and
a promoted version never answered from another version's entries."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest

from djserve.specs import sentiment
from tests.conftest import copy_committed_repository, free_port, skip_without_tritonserver

skip_without_tritonserver()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """sentiment v1 and v2 with different weights (seeds 0 and 1) behind a server with a 4 MB cache."""
    from djserve.triton import TritonServer, TritonSettings
    from exporters.isolated import export_isolated

    repo = copy_committed_repository(tmp_path_factory.mktemp("cache") / "model_repository")
    export_isolated("sentiment", repo, seed=0)
    export_isolated("sentiment", repo, seed=1)
    settings = TritonSettings(model_repository=repo, backend_dir=tmp_path_factory.mktemp("backends"),
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                              load_models=["sentiment"], response_cache_mb=4)
    with TritonServer(settings, log_file=tmp_path_factory.mktemp("logs") / "triton.log") as server:
        yield server, repo


def cache_counts(server, version: int) -> tuple[float, float]:
    """(hits, misses) of sentiment `version` on Triton's /metrics."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as r:
        text = r.read().decode()

    def value(metric: str) -> float:
        m = re.search(rf'^{metric}{{[^}}]*model="sentiment"[^}}]*version="{version}"[^}}]*}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    return value("nv_cache_num_hits_per_model"), value("nv_cache_num_misses_per_model")


def onnx_logits(repo, version: int, feeds: dict) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(repo / "sentiment" / str(version) / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], feeds)[0]


def test_repeats_are_hits_and_each_version_answers_from_its_own_entries(two_versions):
    from clients import TritonModelClient

    server, repo = two_versions
    rng = np.random.default_rng(7)
    feeds = sentiment.SPEC.random_inputs(1, {"tokens": 16}, rng)
    other = sentiment.SPEC.random_inputs(1, {"tokens": 16}, rng)
    with TritonModelClient(server.grpc_url) as c:
        first = c.infer("sentiment", feeds, version=1)["logits"]
        again = [c.infer("sentiment", feeds, version=1)["logits"] for _ in range(3)]
        assert cache_counts(server, 1) == (3.0, 1.0)  # one miss, then hits
        c.infer("sentiment", other, version=1)
        assert cache_counts(server, 1) == (3.0, 2.0)  # another input is a miss
        promoted = c.infer("sentiment", feeds, version=2)["logits"]  # the same input, the new version
        assert cache_counts(server, 2) == (0.0, 1.0)  # not a hit on version 1's entry
        promoted_again = c.infer("sentiment", feeds, version=2)["logits"]
        assert cache_counts(server, 2) == (1.0, 1.0)
    assert all(np.array_equal(a, first) for a in again)
    np.testing.assert_allclose(first, onnx_logits(repo, 1, feeds), atol=1e-5)
    np.testing.assert_allclose(promoted, onnx_logits(repo, 2, feeds), atol=1e-5)
    np.testing.assert_array_equal(promoted_again, promoted)
    assert np.abs(promoted - first).max() > 1e-3  # the versions differ: an answer from v1's entry would show


def test_the_cache_is_enabled_from_the_specs_only_where_answers_are_pure():
    from djserve.repository.config import build_config
    from djserve.specs import ALL

    cached = {name for name, spec in ALL.items() if build_config(spec).response_cache.enable}
    assert cached == {"sentiment", "recommender"}
