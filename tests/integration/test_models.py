"""Every model and ensemble served by the real Triton, over gRPC and HTTP, checked against the specs."""

from __future__ import annotations

import concurrent.futures as cf
import json
import urllib.request

import numpy as np
import pytest
from tokenizers import Tokenizer

from djserve.specs import ALL, EXPORTED, battle_judge, sentiment
from djserve.specs.base import ModelSpec
from djserve.specs.genres import DEFAULT_WEIGHTS, GENRE_WEIGHTS

CHAT = [
    "This is an amazing DJ set!",
    "¿Cuál es el nombre de esta canción?",
    "Furchtbarer Übergang, total daneben",
    "最高のセットだ！",
]
AXES = {"frames": 64, "steps": 12, "tokens": 16}


def example_inputs(spec: ModelSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in spec.inputs:
        if t.dtype == "BYTES":
            pool = [b"house", b"polka"] if t.name == "genre" else [s.encode() for s in CHAT]
            feeds[t.name] = np.array([[pool[i % len(pool)]] for i in range(batch)], dtype=np.object_)
        elif t.name == "logits":
            feeds[t.name] = rng.normal(size=t.shape(batch, AXES)).astype(np.float32)
        else:
            feeds.update(_one(spec, t.name, batch, rng))
    return feeds


def _one(spec, name, batch, rng):
    sub = ModelSpec(spec.name, "python", (spec.input(name),), (), spec.batching, "")
    return sub.random_inputs(batch, AXES, rng)


@pytest.mark.parametrize("name", list(ALL))
def test_model_answers_with_spec_shapes_and_dtypes(client, name):
    spec = ALL[name]
    out = client.infer(name, example_inputs(spec, batch=3))
    assert set(out) == set(spec.output_names)
    input_axes = {d for t in spec.inputs for d in t.dims if isinstance(d, str)}
    for t in spec.outputs:
        # An axis the model creates (the tokenizer's padded length) is only checked for presence.
        expected = [n if not isinstance(d, str) or d in input_axes else out[t.name].shape[i + 1]
                    for i, (d, n) in enumerate(zip(t.dims, t.shape(3, AXES)[1:]))]
        assert out[t.name].shape == (3, *expected), t.name
        assert out[t.name].dtype == t.numpy_dtype, t.name
        if t.dtype == "FP32":
            assert np.all(np.isfinite(out[t.name]))


def test_battle_judge_equals_its_members_run_one_by_one(client):
    members = (EXPORTED["judge"], EXPORTED["technical"], EXPORTED["creative"])
    feeds = example_inputs(battle_judge.SPEC, batch=2, seed=7)  # genres: house, polka (unknown)
    ens = client.infer("battle_judge", feeds)
    judge, technical, creative = (
        client.infer(spec.name, spec.feed(feeds)) for spec in members
    )

    np.testing.assert_allclose(ens["component_scores"], judge["component_scores"], atol=1e-6)
    np.testing.assert_allclose(ens["technical_scores"], technical["technical_scores"], atol=1e-6)
    np.testing.assert_allclose(ens["creative_scores"], creative["creative_scores"], atol=1e-6)
    weights = np.array([GENRE_WEIGHTS["house"], DEFAULT_WEIGHTS], dtype=np.float32)
    expected = (judge["component_scores"] * weights).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ens["overall_score"], expected, atol=1e-6)


def test_sentiment_pipeline_equals_tokenizer_model_softmax(client, exported_repository):
    # The ensemble step asks for the latest version: the newest one loaded (a test may have added one).
    on_disk = sorted(int(p.name) for p in (exported_repository / "sentiment").iterdir() if p.name.isdigit())
    version = max(v for v in on_disk if client.is_ready("sentiment", v))
    tok = Tokenizer.from_file(str(exported_repository / "sentiment" / str(version) / "tokenizer" / "tokenizer.json"))
    tok.no_padding()
    texts = np.array([[t.encode()] for t in CHAT], dtype=np.object_)
    pipe = client.infer("sentiment_pipeline", {"text": texts})

    for i, text in enumerate(CHAT):  # one by one, unpadded: padding must not change the answer
        ids = np.array([tok.encode(text).ids], dtype=np.int64)
        logits = client.infer("sentiment", {"input_ids": ids, "attention_mask": np.ones_like(ids)}, version=version)["logits"][0]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        np.testing.assert_allclose(pipe["probabilities"][i], probs, atol=1e-4)  # padded vs unpadded matmuls
        assert pipe["label"][i, 0].decode() == sentiment.LABELS[int(np.argmax(probs))]
    np.testing.assert_allclose(pipe["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_not_refused(client):
    text = np.array([[("great set " * 2000).encode()]], dtype=np.object_)
    out = client.infer("sentiment_pipeline", {"text": text})
    assert out["label"][0, 0].decode() in sentiment.LABELS


def test_wrong_shape_is_an_error_and_the_server_keeps_serving(client):
    from tritonclient.utils import InferenceServerException

    bad = {"audio_features": np.zeros((1, 1, 64, 8), np.float32), "mixing_features": np.zeros((1, 4, 32), np.float32)}
    with pytest.raises(InferenceServerException):
        client.infer("judge", bad)
    assert client.infer("judge", example_inputs(EXPORTED["judge"], 1))["component_scores"].shape == (1, 4)


@pytest.mark.parametrize("name", ["recommender", "sentiment_pipeline"])
def test_dynamic_batching_forms_batches_under_concurrency(triton, name):
    from clients import TritonModelClient

    spec = ALL[name]
    member = "sentiment" if name == "sentiment_pipeline" else name
    with TritonModelClient(triton.grpc_url) as c:
        before = _counts(c.statistics(member))
        requests = [distinct(example_inputs(spec, batch=1, seed=i), i) for i in range(64)]

        def call(feeds):
            with TritonModelClient(triton.grpc_url) as own:
                return own.infer(name, feeds)

        with cf.ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(call, requests))
        after = _counts(c.statistics(member))
    assert len(results) == 64
    inferences, executions = (a - b for a, b in zip(after, before))
    assert inferences == 64
    assert executions < inferences, f"{member}: {inferences} requests ran in {executions} executions: no batch formed"


WORDS = ("house", "techno", "bass", "drop", "crowd", "vibe", "track", "beat", "remix", "dance", "party", "night",
         "music", "sound", "energy", "love")


def distinct(feeds: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Request i's chat message made unique (the response cache would answer a repeat), in one length bucket."""
    text = f"{CHAT[i % len(CHAT)]} {WORDS[i // len(CHAT) % len(WORDS)]}".encode()
    return {k: np.array([[text]], dtype=np.object_) if k == "text" else v for k, v in feeds.items()}


def _counts(stats: dict) -> tuple[int, int]:
    """(inferences, executions) summed over every loaded version of the model."""
    models = stats["model_stats"]
    return (sum(int(m.get("inference_count", 0)) for m in models), sum(int(m.get("execution_count", 0)) for m in models))


def test_metrics_endpoint_counts_successes(triton):
    with urllib.request.urlopen(triton.metrics_url, timeout=10) as r:
        text = r.read().decode()
    lines = [l for l in text.splitlines() if l.startswith("nv_inference_request_success{") and 'model="judge"' in l]
    assert lines and float(lines[0].rsplit(" ", 1)[1]) > 0


def test_every_version_records_where_its_weights_came_from(exported_repository):
    for name in EXPORTED:
        meta = json.loads((exported_repository / name / "1" / "metadata.json").read_text())
        assert meta["weights"] == "untrained reference weights"
        assert meta["source_framework"] == EXPORTED[name].framework
        assert max(meta["parity"]["max_abs_diff"].values()) <= meta["parity"]["tolerance"] == 1e-4
        assert len(meta["parity"]["batches"]) >= 1
