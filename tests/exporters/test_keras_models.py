"""Keras models (technical, creative, beat_tracker): build, convert with tf2onnx, ONNX Runtime parity."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")

from djserve.specs import beat_tracker, creative, technical  # noqa: E402
from exporters import keras_onnx  # noqa: E402
from exporters.errors import CheckpointError, ExportError  # noqa: E402

SPECS = {s.name: s for s in (technical.SPEC, creative.SPEC, beat_tracker.SPEC)}
TOLERANCE = 1e-4
BATCHES = (1, 3)
# Beat branch: Conv1D k=7,3,3 with valid padding needs frames >= 7+2+2-2 = 11 (10 gives length 0).
BEAT_MIN_FRAMES = 11


@pytest.fixture(scope="module")
def converted():
    """name -> (keras model, ONNX session, conversion seconds); each model converted once."""
    out = {}

    def get(name: str):
        if name not in out:
            spec = SPECS[name]
            model = keras_onnx.load_keras(spec, None, seed=0)
            t0 = time.perf_counter()
            proto = keras_onnx.to_onnx(model, spec)
            seconds = time.perf_counter() - t0
            session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            out[name] = (model, proto, session, seconds)
        return out[name]

    return get


def _too_short(spec, axes) -> bool:
    return spec.name == "beat_tracker" and axes.get("frames", BEAT_MIN_FRAMES) < BEAT_MIN_FRAMES


@pytest.mark.parametrize("name", list(SPECS))
def test_onnx_matches_keras(name, converted):
    spec = SPECS[name]
    model, _, session, seconds = converted(name)
    rng = np.random.default_rng(0)
    worst = 0.0
    for axes in spec.parity_axes:
        if _too_short(spec, axes):
            continue  # see test_beat_tracker_needs_eleven_frames
        for batch in BATCHES:
            feeds = spec.random_inputs(batch, axes, rng)
            want = keras_onnx.run_keras(model, feeds)
            got = dict(zip(spec.output_names, session.run(spec.output_names, feeds)))
            for t in spec.outputs:
                shape = t.shape(batch, axes)
                assert want[t.name].shape == shape, (t.name, want[t.name].shape, shape)
                assert got[t.name].shape == shape, (t.name, got[t.name].shape, shape)
                assert got[t.name].dtype == np.float32
                worst = max(worst, float(np.max(np.abs(got[t.name] - want[t.name]))))
    print(f"{name}: max abs ONNX-vs-Keras {worst:.3g}, conversion {seconds:.1f} s")
    assert worst <= TOLERANCE


@pytest.mark.parametrize("name", list(SPECS))
def test_onnx_names_and_dynamic_axes(name, converted):
    spec = SPECS[name]
    _, proto, session, _ = converted(name)
    assert [i.name for i in session.get_inputs()] == spec.input_names
    assert [o.name for o in session.get_outputs()] == spec.output_names
    for vi in proto.graph.input:
        want = spec.input(vi.name)
        dims = vi.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis in want.dynamic_axes:
                assert not dim.HasField("dim_value"), (vi.name, axis)
                assert dim.dim_param == want.dynamic_axes[axis]
            else:
                assert dim.dim_value == want.dims[axis - 1]
    # no training-only ops survived (dropout / random)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "RandomUniform", "RandomUniformLike", "RandomNormal"}


def test_build_is_deterministic():
    a = keras_onnx.load_keras(SPECS["beat_tracker"], None, seed=0).get_weights()
    b = keras_onnx.load_keras(SPECS["beat_tracker"], None, seed=0).get_weights()
    c = keras_onnx.load_keras(SPECS["beat_tracker"], None, seed=1).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_beat_tracker_needs_eleven_frames(converted):
    spec = SPECS["beat_tracker"]
    model, _, session, _ = converted("beat_tracker")
    rng = np.random.default_rng(1)
    ok = spec.random_inputs(2, {"frames": BEAT_MIN_FRAMES}, rng)
    assert keras_onnx.run_keras(model, ok)["beat_probability"].shape == (2, 1)
    assert session.run(None, ok)[1].shape == (2, 1)
    short = spec.random_inputs(2, {"frames": BEAT_MIN_FRAMES - 1}, rng)
    with pytest.raises(Exception):
        keras_onnx.run_keras(model, short)


def test_checkpoints_round_trip(tmp_path):
    spec = SPECS["creative"]
    model = keras_onnx.load_keras(spec, None, seed=3)
    model.save(tmp_path / "creative.keras")
    model.save_weights(tmp_path / "creative.weights.h5")
    feeds = spec.random_inputs(2, spec.parity_axes[0], np.random.default_rng(0))
    want = keras_onnx.run_keras(model, feeds)["creative_scores"]
    for path in (tmp_path / "creative.keras", tmp_path / "creative.weights.h5"):
        loaded = keras_onnx.load_keras(spec, path, seed=0)
        np.testing.assert_array_equal(keras_onnx.run_keras(loaded, feeds)["creative_scores"], want)


def test_wrong_checkpoints_are_refused(tmp_path):
    other = keras_onnx.load_keras(SPECS["creative"], None, seed=0)
    other.save(tmp_path / "creative.keras")
    other.save_weights(tmp_path / "creative.weights.h5")
    (tmp_path / "x.keras").write_text("not a model\n")
    (tmp_path / "x.pt").write_bytes(b"\0")
    (tmp_path / "saved_model").mkdir()
    cases = [
        tmp_path / "creative.keras",  # another architecture
        tmp_path / "creative.weights.h5",  # another architecture's weights
        tmp_path / "missing.keras",
        tmp_path / "x.keras",  # text file
        tmp_path / "x.pt",
        tmp_path / "saved_model",
    ]
    for path in cases:
        with pytest.raises(CheckpointError) as info:
            keras_onnx.load_keras(SPECS["technical"], path)
        message = str(info.value)
        assert "\n" not in message and message.startswith("technical: "), message


def test_shape_mismatch_is_refused(tmp_path):
    """Same names, wrong shape (84 -> 64 mel bins): refused by the contract check."""
    import keras

    inp = keras.Input(shape=(None, 64), name="mel_frames")
    tempo = keras.layers.Dense(1, activation="sigmoid", name="beat_activation")(inp)
    beat = keras.layers.Dense(1, activation="sigmoid", name="beat_probability")(
        keras.layers.GlobalMaxPooling1D()(inp)
    )
    keras.Model(inp, [tempo, beat]).save(tmp_path / "bt.keras")
    with pytest.raises(CheckpointError, match="shape"):
        keras_onnx.load_keras(SPECS["beat_tracker"], tmp_path / "bt.keras")


def test_to_onnx_refuses_other_contract():
    model = keras_onnx.load_keras(SPECS["creative"], None)
    with pytest.raises(ExportError):
        keras_onnx.to_onnx(model, SPECS["technical"])


def test_framework_version():
    import keras
    import tensorflow as tf

    assert keras_onnx.framework_version() == f"tensorflow {tf.__version__} / keras {keras.__version__}"
