"""`djserve train` / `djserve evaluate`: every run is an MLflow run that registers a version
carrying its held-out metrics, and the exported Triton version says where it came from."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from djserve.cli import app
from djserve.registry import CHAMPION, METRIC_TAG, Registry
from djserve.repository.layout import provenance
from tests.conftest import copy_committed_repository


def run_cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The recommender (the fastest trainer) trained on its quick profile and exported."""
    state = tmp_path_factory.mktemp("state")
    repo = copy_committed_repository(tmp_path_factory.mktemp("repo") / "model_repository")
    mp = pytest.MonkeyPatch()
    mp.setenv("DJSERVE_STATE_DIR", str(state))
    code, out = run_cli("train", "recommender", "--profile", "quick", "--export", "--repository", str(repo))
    yield code, out, state, repo
    mp.undo()


def test_train_logs_a_run_and_registers_a_version_with_its_metrics(trained):
    code, out, state, _ = trained
    assert code == 0, out
    assert "registered as models:/recommendations/1" in out
    registry = Registry(state)
    mv = registry.client.get_model_version("recommendations", "1")
    run = registry.client.get_run(mv.run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["profile"] == "quick" and params["seed"] == "0" and params["framework"] == "pytorch"
    assert len(params["dataset.hash"]) == 64 and tags["dataset.hash"] == params["dataset.hash"]
    history = registry.client.get_metric_history(mv.run_id, "train_loss")
    assert len(history) >= 2 and [m.step for m in history] == list(range(1, len(history) + 1))
    held = metrics["heldout.ndcg_at_10"]
    assert held > metrics["heldout.ndcg_at_10.baseline_popularity"] > metrics["heldout.ndcg_at_10.baseline_random"]
    assert float(mv.tags[f"{METRIC_TAG}heldout.ndcg_at_10"]) == pytest.approx(held, rel=1e-5)
    assert mv.tags["weights"] == "trained reference" and mv.tags["dataset.hash"] == params["dataset.hash"]
    artifacts = {a.path for a in registry.client.list_artifacts(mv.run_id)}
    assert {"checkpoint", "evaluation.json"} <= artifacts
    assert [a.path for a in registry.client.list_artifacts(mv.run_id, "checkpoint")] == ["checkpoint/recommender.pt"]


def test_the_exported_version_carries_its_provenance_and_becomes_champion(trained):
    code, out, state, repo = trained
    assert code == 0, out
    meta = json.loads((repo / "recommender" / "1" / "metadata.json").read_text())
    prov = provenance(meta)
    assert prov["kind"] == "trained" and prov["registry"] == "models:/recommendations/1"
    assert prov["metrics"]["heldout.ndcg_at_10"] > 0 and prov["headline"] == "heldout.ndcg_at_10"
    assert Registry(state).alias_version("recommender", CHAMPION) == 1


def test_evaluate_scores_the_champion_again_and_logs_a_run(trained, monkeypatch):
    _, _, state, _ = trained
    monkeypatch.setenv("DJSERVE_STATE_DIR", str(state))
    code, out = run_cli("evaluate", "recommender", "--profile", "quick", "--json")
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert result["evaluated"] == "models:/recommendations/1"
    registered = Registry(state).client.get_model_version("recommendations", "1").tags
    assert result["metrics"]["heldout.ndcg_at_10"] == pytest.approx(float(registered[f"{METRIC_TAG}heldout.ndcg_at_10"]), rel=1e-5)
    run = Registry(state).client.get_run(result["run_id"])
    assert run.data.tags["kind"] == "evaluate" and run.data.tags["evaluated"] == "models:/recommendations/1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "nonsense"], "unknown model(s) nonsense"),
        (["train", "judge", "--dataset", "/nonexistent/djsets"], "dataset /nonexistent/djsets does not exist"),
        (["train", "sentiment", "--dataset", "/tmp"], "--dataset does not apply"),
        (["evaluate", "judge", "--version", "1", "--checkpoint", "x.pt"], "not both"),
    ],
)
def test_a_bad_request_is_one_clear_error(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv("DJSERVE_STATE_DIR", str(tmp_path))
    code, out = run_cli(*args)
    assert code == 1
    assert "error:" in out and message in " ".join(out.split())
