"""The client library and the README's example scripts against the running stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from clients import AsyncGatewayClient, GatewayClient, InvalidRequest, TritonModelClient
from djserve.settings import PROJECT_ROOT
from loadtest.samples import click_track, encode


@pytest.fixture(scope="module")
def wav_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "set.wav"
    path.write_bytes(encode(click_track(128, 15)))
    return path


def test_sync_client_scores_analyses_and_recommends(gateway, wav_file):
    with GatewayClient(gateway.url) as client:
        sheet = client.analyze_set(wav_file, battle_id="b-7", genre="techno", tracks=[{"title": "Jaguar"}])
        assert abs(sheet.tempo.bpm - 128) <= 2 and sheet.model_versions["judge"] == 1
        assert 0 <= sheet.overall_score <= 1
        result = client.analyze_sentiment("Que set incrível, a pista está pegando fogo", language="pt")
        assert result.sentiment in ("negative", "neutral", "positive") and result.language == "pt"
        recs = client.recommend_battles("test-user-123", limit=4)
        assert len(recs.recommendations) == 4 and not recs.cold_start
        assert client.ready() and client.health().status == "healthy"


def test_errors_are_typed_and_carry_the_gateway_message(gateway, wav_file):
    with GatewayClient(gateway.url) as client:
        with pytest.raises(InvalidRequest) as info:
            client.analyze_set(wav_file, battle_id="b-7", genre="polka")
        assert info.value.status == 422 and info.value.code == "unknown_genre" and "polka" in info.value.message
        with pytest.raises(InvalidRequest) as info:
            client.analyze_sentiment(" ")
        assert info.value.code == "empty_text"


def test_async_client(gateway):
    async def run():
        async with AsyncGatewayClient(gateway.url) as client:
            return await asyncio.gather(
                client.analyze_sentiment("Best battle I have seen this year"),
                client.recommend_battles("new-user-1", limit=2),
            )

    sentiment, recs = asyncio.run(run())
    assert sentiment.model_version == 1 and recs.cold_start and len(recs.recommendations) == 2


def test_triton_client_uses_the_specs(triton):
    import numpy as np

    with TritonModelClient(triton.grpc_url) as client:
        out = client.infer("sentiment_pipeline", {"text": np.array([[b"great set"]], dtype=object)})
    assert out["probabilities"].shape == (1, 3) and out["label"][0, 0] in (b"negative", b"neutral", b"positive")


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("score_set.py", ["{wav}", "house"], "BPM"),
        ("chat_sentiment.py", ["This is an amazing DJ set!", "¡Qué aburrido!"], "amazing"),
        ("recommend.py", ["test-user-123", "3"], "recommender v"),
    ],
)
def test_readme_examples_run(gateway, wav_file, script, args, expect):
    env = {**os.environ, "DJ_GATEWAY_URL": gateway.url}
    argv = [sys.executable, str(PROJECT_ROOT / "examples" / script), *(a.format(wav=wav_file) for a in args)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout
