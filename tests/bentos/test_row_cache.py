"""The gateway's per-row answer cache (bentos.row_cache) in front of the micro-batcher, against a fake
Triton client: repeats answered without Triton, only the missing rows sent, versions and errors kept apart."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from bentos.backend import ModelBackend
from bentos.errors import GatewayError
from bentos.row_cache import RowCache, serves
from djserve import api, specs
from djserve.traffic import FamilyPolicy, Route
from tests.bentos.fakes import FakeTriton, default_outputs, settings, write_policy

V1 = Route("sentiment", 1, canary=False, pinned=False)


@pytest.fixture(autouse=True)
def _single_process_prometheus(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)


def rows_total(model: str, outcome: str) -> float:
    import prometheus_client

    return prometheus_client.REGISTRY.get_sample_value("ai_gateway_row_cache_total", {"model": model, "outcome": outcome}) or 0.0


def versioned(model, inputs, version):
    """The fake model's answers, shifted by the version: each version answers a row differently."""
    out = default_outputs(model, inputs, version)
    return {name: a + np.float32(version) for name, a in out.items()}


def chat(*token_rows: list[int], width: int = 16) -> dict[str, np.ndarray]:
    """Sentiment inputs as the gateway packs them: one row per message, padded to one width."""
    ids = np.ones((len(token_rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(token_rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return {"input_ids": ids, "attention_mask": mask}


GG, FIRE, HYPE, DROP = [0, 5, 2], [0, 6, 6, 6, 2], [0, 7, 2], [0, 8, 9, 2]


def make_backend(tmp_path, fake: FakeTriton | None = None, **overrides) -> ModelBackend:
    s = settings(tmp_path, **overrides)
    write_policy(s)
    return ModelBackend(s, fake or FakeTriton(versioned))


def expected(inputs, version: int = 1) -> np.ndarray:
    return versioned("sentiment", inputs, version)["logits"]


def sent_rows(fake: FakeTriton) -> list[list[list[int]]]:
    """The rows (input_ids) of each sentiment call Triton got, in order."""
    return [call["input_ids"].tolist() for m, _, call in fake.calls if m == "sentiment"]


def test_a_repeated_message_is_answered_from_the_cache_without_a_second_triton_call(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    hits, misses = rows_total("sentiment", "hit"), rows_total("sentiment", "miss")

    async def main():
        return [await backend.infer("sentiment", chat(GG), V1) for _ in range(3)]

    answers = asyncio.run(main())
    assert len(fake.calls) == 1
    for out in answers:
        np.testing.assert_array_equal(out["logits"], expected(chat(GG)))
    assert (rows_total("sentiment", "hit") - hits, rows_total("sentiment", "miss") - misses) == (2, 1)
    # every request is still observed by the live stats (canary gates), answered from the cache or not
    assert backend.monitor.stats("sentiment", backend.policies.current().families["sentiment"]).version(1).requests_total == 3


def test_a_request_mixing_hits_and_misses_sends_only_the_misses_and_keeps_the_row_order(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    mixed = chat(HYPE, GG, DROP, FIRE, HYPE)  # HYPE twice in one request: sent once

    async def main():
        await backend.infer("sentiment", chat(GG, FIRE), V1)
        fake.calls.clear()
        return await backend.infer("sentiment", mixed, V1)

    out = asyncio.run(main())
    assert sent_rows(fake) == [chat(HYPE, DROP)["input_ids"].tolist()]
    np.testing.assert_array_equal(out["logits"], expected(mixed))
    assert len(set(map(tuple, out["logits"].tolist()))) == 3  # the rows really differ: the order is tested


def test_repeats_are_answered_without_triton_at_high_concurrency(tmp_path):
    """Joined calls are what defeat Triton's whole-call cache: here 32 concurrent requests of known
    messages make no call at all, and each gets its own row."""
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    messages = [GG, FIRE, HYPE, DROP]

    async def main():
        await backend.infer("sentiment", chat(*messages), V1)
        fake.calls.clear()
        return await asyncio.gather(*(backend.infer("sentiment", chat(messages[i % 4]), V1) for i in range(32)))

    answers = asyncio.run(main())
    assert fake.calls == []
    for i, out in enumerate(answers):
        np.testing.assert_array_equal(out["logits"], expected(chat(messages[i % 4])))


def test_another_version_misses_and_gets_its_own_answer(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    write_policy(backend.settings, sentiment=FamilyPolicy(stable=1, canary=2, canary_percent=100))
    inputs = chat(GG)

    async def main():
        stable = await backend.infer("sentiment", inputs, V1)
        canary = await backend.infer("sentiment", inputs, backend.route("sentiment", "any key"))
        pinned = await backend.infer("sentiment", inputs, backend.route("sentiment", "any key", pinned=3))
        again = {v: await backend.infer("sentiment", inputs, backend.route("sentiment", "k", pinned=v)) for v in (1, 2, 3)}
        return stable, canary, pinned, again

    stable, canary, pinned, again = asyncio.run(main())
    assert fake.versions_called("sentiment") == [1, 2, 3]  # then every version answers from its own entry
    for v, out in ((1, stable), (2, canary), (3, pinned)):
        np.testing.assert_array_equal(out["logits"], expected(inputs, v))
        np.testing.assert_array_equal(again[v]["logits"], expected(inputs, v))
    assert not np.array_equal(stable["logits"], canary["logits"])


def test_an_error_is_not_cached(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    fake.fail[("sentiment", 1)] = InferenceServerException("onnx runtime error", status="StatusCode.INTERNAL")

    async def main():
        with pytest.raises(GatewayError) as failed:
            await backend.infer("sentiment", chat(GG), V1)
        fake.fail.clear()
        return failed.value, await backend.infer("sentiment", chat(GG), V1)

    failed, out = asyncio.run(main())
    assert failed.status == 502 and len(backend.row_cache) == 1
    assert fake.versions_called("sentiment") == [1, 1]  # the failed row went to Triton again
    np.testing.assert_array_equal(out["logits"], expected(chat(GG)))


def test_the_least_recently_used_row_is_evicted_past_the_bound(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake, row_cache_entries=2)

    async def main():
        for message in (GG, FIRE, GG, HYPE, FIRE, GG):  # GG used again before HYPE comes: FIRE goes
            await backend.infer("sentiment", chat(message), V1)

    asyncio.run(main())
    assert sent_rows(fake) == [chat(m)["input_ids"].tolist() for m in (GG, FIRE, HYPE, FIRE, GG)]
    assert len(backend.row_cache) == 2


def test_zero_entries_turn_the_cache_off(tmp_path):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake, row_cache_entries=0)

    async def main():
        return [await backend.infer("sentiment", chat(GG), V1) for _ in range(2)]

    answers = asyncio.run(main())
    assert backend.row_cache is None and fake.versions_called("sentiment") == [1, 1]
    for out in answers:
        np.testing.assert_array_equal(out["logits"], expected(chat(GG)))


def test_the_recommender_never_goes_through_it(tmp_path, monkeypatch):
    fake = FakeTriton(versioned)
    backend = make_backend(tmp_path, fake)
    spec = specs.get("recommender")
    assert spec.response_cache and not spec.batching.gateway_joins and not serves(spec)
    assert serves(specs.get("sentiment"))

    async def refuse(*args, **kwargs):
        raise AssertionError("the recommender went through the row cache")

    monkeypatch.setattr(backend.row_cache, "answer", refuse)
    inputs = spec.random_inputs(4, {}, np.random.default_rng(0))
    route = Route("recommender", 1, canary=False, pinned=False)

    async def main():
        return [await backend.infer("recommender", inputs, route) for _ in range(2)]

    answers = asyncio.run(main())
    assert fake.versions_called("recommender") == [1, 1] and len(backend.row_cache) == 0
    for out in answers:
        np.testing.assert_array_equal(out["score"], versioned("recommender", inputs, 1)["score"])


def test_a_row_key_is_its_bytes_and_shape_wherever_the_row_sits():
    spec = specs.get("sentiment")
    a, b = chat(GG, FIRE), chat(DROP, GG, HYPE)
    assert RowCache.key(spec, 1, a, 0) == RowCache.key(spec, 1, b, 1)  # the neighbours do not matter
    assert RowCache.key(spec, 1, a, 0) != RowCache.key(spec, 2, a, 0)
    assert RowCache.key(spec, 1, a, 0) != RowCache.key(spec, 1, a, 1)
    assert RowCache.key(spec, 1, a, 0) != RowCache.key(spec, 1, chat(GG, width=32), 0)  # another length bucket


def test_the_gateway_answers_a_repeated_chat_message_without_triton(tmp_path, monkeypatch):
    """Through the real app: the tokenised, bucketed message is what is keyed."""
    from _bentoml_sdk.service import set_current_service

    from tests.bentos.test_gateway_app import build

    monkeypatch.delenv(api.ADMIN_TOKEN_ENV, raising=False)
    fake = FakeTriton()
    gw, client, previous = build(tmp_path, fake)
    write_policy(gw.settings)

    def batch(*texts: str) -> list[dict]:
        return client.post(api.SENTIMENT_BATCH_ROUTE, json={"messages": [{"text": t} for t in texts]}).json()["results"]

    try:
        with client:
            first = batch("what a great set", "awful mix")
            fake.calls.clear()
            second = batch("awful mix", "drop the set", "what a great set")
            assert [len(call["input_ids"]) for _, _, call in fake.calls] == [1]  # only "drop the set"
            assert [second[0], second[2]] == [first[1], first[0]]
            fake.calls.clear()
            assert client.post(api.SENTIMENT_ROUTE, json={"text": "drop the set"}).json()["scores"] == second[1]["scores"]
            assert fake.calls == []
            client.portal.call(gw.backend.shadow.close)
    finally:
        gw.predictions.close()
        set_current_service(previous)
