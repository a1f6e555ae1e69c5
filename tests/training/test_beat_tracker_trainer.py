"""The beat tracker trainer on the quick profile: it learns, its control does not, it reproduces, it exports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from training.trainers import beat_tracker as BT

HEADLINE = "heldout.f_measure"


@pytest.fixture(scope="module")
def data():
    return BT.dataset("quick", 0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    logs: list[tuple[int, dict[str, float]]] = []
    ckpt = BT.fit(data, BT.PROFILES["quick"], 0, tmp_path_factory.mktemp("fit"), lambda e, m: logs.append((e, dict(m))))
    return ckpt, BT.evaluate(ckpt, data), logs


def test_dataset_has_the_profiles_splits(data):
    sizes = BT.PROFILES["quick"].sizes
    assert {k: len(v) for k, v in data.splits.items()} == dataclasses.asdict(sizes)
    assert len(data.hash) == 64 and data.splits["heldout"].audio is not None
    assert BT.dataset("quick", 1).hash == data.hash  # the clips are the profile's; the seed varies training


def test_quick_profile_beats_evenly_spaced_guesses(trained):
    _, ev, _ = trained
    m = ev.metrics
    assert ev.headline == HEADLINE
    assert m[HEADLINE] > m[f"{HEADLINE}.baseline_grid_120bpm"] + 0.25
    assert m["heldout.amlt"] > m["heldout.amlt.baseline_grid_120bpm"]
    assert m["nobeat.accuracy"] > m["nobeat.accuracy.baseline_always_beat"]
    assert {"f_measure.baseline_librosa", "tempo_acc1.baseline_librosa"} <= {k.split(".", 1)[1] for k in m}


def test_every_epoch_is_logged(trained):
    _, _, logs = trained
    assert [e for e, _ in logs] == list(range(1, len(logs) + 1)) and len(logs) >= 3
    assert all({"train_loss", "val_loss", "val_f_measure", "learning_rate"} <= set(m) for _, m in logs)
    assert logs[-1][1]["train_loss"] < logs[0][1]["train_loss"]


def test_shuffled_beats_score_near_chance(data, trained, tmp_path):
    _, real, _ = trained
    ckpt = BT.fit(data, BT.PROFILES["quick"], 0, tmp_path, lambda e, m: None, shuffle_labels=True)
    m = BT.evaluate(ckpt, data).metrics
    assert m[HEADLINE] < m[f"{HEADLINE}.baseline_grid_120bpm"] + 0.15
    assert m[HEADLINE] < 0.6 * real.metrics[HEADLINE]


def test_same_seed_same_weights(data, tmp_path):
    short = dataclasses.replace(BT.PROFILES["quick"], epochs=1, steps_per_epoch=3)

    def weights(seed: int, name: str) -> list[np.ndarray]:
        from exporters.keras_onnx import load_keras

        ckpt = BT.fit(data, short, seed, tmp_path / name, lambda e, m: None)
        return load_keras(BT.SPEC, ckpt).get_weights()

    a, b, c = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_the_checkpoint_loads_as_the_served_contract(trained, data):
    import zipfile

    from exporters.keras_onnx import load_keras

    ckpt, _, _ = trained
    assert ckpt.suffix == ".keras" and zipfile.is_zipfile(ckpt)
    model = load_keras(BT.SPEC, ckpt)  # safe_mode, no custom objects: the training loss is not in the file
    assert list(model.output_names) == ["beat_activation", "beat_probability"]
    act, prob = BT.predictor(model)(data.splits["heldout"].frames(0))
    assert act.shape == (data.splits["heldout"].n_frames(0),) and 0 <= prob <= 1


def test_an_exported_graph_is_scored_like_its_checkpoint_and_int8_is_scored_too(trained, data, tmp_path):
    """What `djserve export beat_tracker --quantize int8` relies on."""
    from tests.training.graph_scoring import check_exported_graphs_are_scored

    ckpt, ev = trained[0], trained[1]
    check_exported_graphs_are_scored("beat_tracker", BT.evaluate, ckpt, data, ev.metrics, HEADLINE, tmp_path)
