"""The MLflow registry wrapper on embedded sqlite stores: registration, lookup, aliases, promotion log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from djserve.registry import (
    CHALLENGER,
    CHAMPION,
    REGISTERED_NAMES,
    Registry,
    RegisteredVersion,
    family_of,
    tracking_uri,
)
from djserve.specs import EXPORTED

PARITY = {"tolerance": 1e-4, "max_abs_diff": {"scores": 3e-7, "overall": 1e-6}, "batches": []}
SPEC = {"name": "judge", "inputs": ["mel"], "outputs": ["scores", "overall"]}


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fresh_registry(state_dir: Path) -> Registry:
    # The module registries must use their own sqlite store even if the shell exports a tracking URI.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return Registry(state_dir)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    (root / "judge_v1.pt").write_bytes(b"\x80\x02torch-v1" + bytes(range(256)))
    (root / "judge_v2.pt").write_bytes(b"\x80\x02torch-v2" + bytes(range(255, -1, -1)))
    hf = root / "sentiment-hf"
    (hf / "sub").mkdir(parents=True)
    (hf / "config.json").write_text(json.dumps({"model_type": "xlm-roberta", "num_labels": 3}))
    (hf / "sub" / "model.safetensors").write_bytes(b"safetensors" * 100)
    return {"v1": root / "judge_v1.pt", "v2": root / "judge_v2.pt", "hf": hf}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def registry(state_dir) -> Registry:
    return fresh_registry(state_dir)


@pytest.fixture(scope="module")
def registered(registry, checkpoints) -> dict[str, RegisteredVersion]:
    return {
        "judge1": registry.register("judge", checkpoints["v1"], weights="seeded", parity=PARITY, spec=SPEC),
        "judge2": registry.register(
            "judge", checkpoints["v2"], weights="trained", parity=PARITY, spec=SPEC, extra_tags={"git": "abc123"}
        ),
        "sentiment1": registry.register(
            "sentiment", checkpoints["hf"], weights="hf", parity={"max_abs_diff": {"probs": 2e-8}}, spec={"name": "s"}
        ),
    }


@pytest.fixture(scope="module")
def other_registry(tmp_path_factory) -> Registry:
    """A second registry on its own sqlite store, in the same process."""
    return fresh_registry(tmp_path_factory.mktemp("other-state"))


def test_names_cover_every_exported_model_and_invert():
    assert set(REGISTERED_NAMES) == set(EXPORTED)
    assert len(set(REGISTERED_NAMES.values())) == len(REGISTERED_NAMES)
    assert REGISTERED_NAMES["judge"] == "ai-judge"
    assert REGISTERED_NAMES["sentiment"] == "sentiment-analysis"
    assert REGISTERED_NAMES["recommender"] == "recommendations"
    for family, name in REGISTERED_NAMES.items():
        assert family_of(name) == family
    with pytest.raises(ValueError, match="ai-judge-techno"):
        family_of("ai-judge-techno")


def test_default_store_is_sqlite_in_state_dir(registry, registered, state_dir):
    assert registry.tracking_uri == f"sqlite:///{state_dir.resolve()}/mlflow.db"
    assert (state_dir / "mlflow.db").is_file()
    for rv in registered.values():
        assert rv.source.startswith((state_dir.resolve() / "mlartifacts").as_uri() + "/")
        assert rv.source.endswith("/checkpoint")


def test_versions_count_up_per_name(registry, registered):
    assert [(rv.family, rv.name, rv.version) for rv in registered.values()] == [
        ("judge", "ai-judge", 1),
        ("judge", "ai-judge", 2),
        ("sentiment", "sentiment-analysis", 1),
    ]
    assert registry.latest_versions("judge") == [2, 1]
    assert registry.latest_versions("sentiment") == [1]
    assert registry.latest_versions("technical") == []


def test_run_records_params_metrics_artifacts_and_version_tags(registry, registered):
    rv = registered["judge2"]
    run = registry.client.get_run(rv.run_id)
    assert registry.client.get_experiment(run.info.experiment_id).name == "djserve-judge"
    assert run.data.params == {"family": "judge", "weights": "trained"}
    assert run.data.metrics == {"parity_max_abs_diff_scores": 3e-7, "parity_max_abs_diff_overall": 1e-6}
    assert run.info.status == "FINISHED"
    root = {f.path for f in registry.client.list_artifacts(rv.run_id)}
    assert root == {"spec.json", "parity.json", "checkpoint"}
    local = Path(registry.client.download_artifacts(rv.run_id, "parity.json", str(registry.state_dir / "dl")))
    assert json.loads(local.read_text()) == PARITY
    mv = registry.client.get_model_version("ai-judge", "2")
    assert mv.source == rv.source and mv.run_id == rv.run_id
    assert mv.tags == {"family": "judge", "weights": "trained", "git": "abc123"}


def test_resolve_by_version_and_alias(registry, registered):
    assert registry.resolve("models:/ai-judge/1") == registered["judge1"]
    assert registry.resolve("models:/sentiment-analysis/1") == registered["sentiment1"]
    registry.set_alias("judge", CHALLENGER, 2)
    try:
        assert registry.resolve(f"models:/ai-judge@{CHALLENGER}") == registered["judge2"]
    finally:
        registry.delete_alias("judge", CHALLENGER)


def test_download_checkpoint_file_is_byte_identical(registry, registered, checkpoints, tmp_path):
    for key, ckpt in (("judge1", "v1"), ("judge2", "v2")):
        local = registry.download_checkpoint(registered[key], tmp_path / key)
        assert local.is_file()
        assert local.name == checkpoints[ckpt].name
        assert local.read_bytes() == checkpoints[ckpt].read_bytes()


def test_download_checkpoint_directory_is_identical(registry, registered, checkpoints, tmp_path):
    local = registry.download_checkpoint(registered["sentiment1"], tmp_path)
    assert local.is_dir()
    assert local.name == checkpoints["hf"].name
    assert tree(local) == tree(checkpoints["hf"])
    assert len(tree(local)) == 2


def test_aliases_set_move_delete(registry, registered):
    assert registry.aliases("technical") == {}
    assert registry.alias_version("judge", CHAMPION) is None
    registry.set_alias("judge", CHAMPION, 1)
    registry.set_alias("judge", CHALLENGER, 2)
    assert registry.aliases("judge") == {CHAMPION: 1, CHALLENGER: 2}
    registry.set_alias("judge", CHAMPION, 2)  # move
    assert registry.alias_version("judge", CHAMPION) == 2
    assert registry.resolve(f"models:/ai-judge@{CHAMPION}").version == 2
    registry.delete_alias("judge", CHALLENGER)
    registry.delete_alias("judge", CHALLENGER)  # absent: no error
    registry.delete_alias("technical", CHAMPION)  # no registered model: no error
    assert registry.aliases("judge") == {CHAMPION: 2}
    assert registry.aliases("sentiment") == {}
    with pytest.raises(ValueError, match="version=9"):
        registry.set_alias("judge", CHAMPION, 9)
    registry.delete_alias("judge", CHAMPION)
    assert registry.aliases("judge") == {}


def test_record_and_history_round_trip(registry, registered, monkeypatch):
    monkeypatch.setenv("USER", "tester")
    before = len(registry.history())
    entry = registry.record("judge", "promote", version=2, alias=CHAMPION, previous=1, checks={"p95_ms": 12.5})
    registry.record("sentiment", "note", reason="no version here")
    history = registry.history()
    assert len(history) == before + 2
    assert history[-2] == entry
    assert entry["action"] == "promote" and entry["family"] == "judge" and entry["actor"] == "tester"
    assert entry["time"].endswith("+00:00")
    assert [e["action"] for e in registry.history("sentiment")][-1] == "note"
    assert all(e["family"] == "judge" for e in registry.history("judge"))
    lines = (registry.state_dir / "promotions.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["reason"] == "no version here"
    tags = registry.client.get_model_version("ai-judge", "2").tags
    assert json.loads(tags["djserve.promote"]) == {
        "version": 2, "alias": CHAMPION, "previous": 1, "checks": {"p95_ms": 12.5}
    }
    assert "djserve.promote" not in registry.client.get_model_version("ai-judge", "1").tags


def test_record_refuses_unknown_version_without_logging(registry, registered):
    before = registry.history()
    with pytest.raises(Exception, match="version=7"):
        registry.record("judge", "promote", version=7)
    assert registry.history() == before


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("runs:/abc/checkpoint", "not a model URI"),
        ("models:/ai-judge", "not a model URI"),
        ("models:/ai-judge/1/extra", "not a model URI"),
        ("models:/ai-judge-techno/1", "unknown registered model 'ai-judge-techno'"),
        ("models:/ai-technical/1", "'ai-technical' has no version 1"),
        ("models:/ai-judge/99", "'ai-judge' has no version 99"),
        ("models:/ai-judge/latest", "must be a positive integer"),
        ("models:/ai-judge@nope", "'ai-judge' has no alias 'nope'"),
    ],
)
def test_resolve_errors(registry, registered, uri, message):
    with pytest.raises(ValueError, match=message) as info:
        registry.resolve(uri)
    assert "\n" not in str(info.value)


def test_two_stores_in_one_process_are_isolated(registry, registered, other_registry, checkpoints):
    assert other_registry.tracking_uri != registry.tracking_uri
    assert other_registry.latest_versions("judge") == []
    rv = other_registry.register("judge", checkpoints["v2"], weights="other", parity=PARITY, spec=SPEC)
    assert rv.version == 1
    other_registry.set_alias("judge", CHAMPION, 1)
    assert other_registry.latest_versions("judge") == [1]
    assert registry.latest_versions("judge") == [2, 1]
    assert registry.alias_version("judge", CHAMPION) is None
    assert registry.resolve("models:/ai-judge/1").run_id != rv.run_id


def test_tracking_uri_env_overrides_default(other_registry, checkpoints, tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(state) == f"sqlite:///{state.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other_registry.tracking_uri)
    assert tracking_uri(state) == other_registry.tracking_uri
    reg = Registry(state)
    assert reg.tracking_uri == other_registry.tracking_uri
    rv = reg.register("creative", checkpoints["v1"], weights="env", parity=PARITY, spec=SPEC)
    assert other_registry.resolve("models:/ai-creative/1") == rv
    assert not (state / "mlflow.db").exists()
    # Artifacts of a sqlite store sit beside its database, wherever the state dir is.
    assert rv.source.startswith((other_registry.state_dir.resolve() / "mlartifacts").as_uri() + "/")
