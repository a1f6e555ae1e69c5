"""The DJ-set clip generator: reproducible, labelled by the label model, featurised exactly as the
gateway featurises an upload, with beats where the parameters say."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from djserve.specs.features import HOP_LENGTH, SAMPLE_RATE
from djserve.specs.labels import MixParams, scores
from training.datasets import djsets, store

FRAMES = 256  # short clips keep the test cheap; the generator is the same at any length


@pytest.fixture(scope="module")
def clip():
    return djsets.make_clip(seed=3, index=5, frames=FRAMES)


def test_a_clip_is_reproducible_from_its_seed_and_index(clip):
    again = djsets.make_clip(seed=3, index=5, frames=FRAMES)
    other = djsets.make_clip(seed=3, index=6, frames=FRAMES)
    np.testing.assert_array_equal(clip["audio_features"], again["audio_features"])
    assert clip["params"] == again["params"]
    assert not np.array_equal(clip["audio_features"], other["audio_features"])


def test_labels_are_the_label_model_of_the_drawn_parameters(clip):
    expected = scores(MixParams.from_dict(clip["params"]), FRAMES)
    assert clip["labels"] == pytest.approx(expected)
    assert clip["curves"].shape == (len(djsets.LABEL_KEYS), FRAMES)
    np.testing.assert_allclose(clip["curves"].astype(np.float32).mean(axis=1), [expected[k] for k in djsets.LABEL_KEYS], atol=2e-3)


def test_features_are_what_the_gateway_computes_for_the_same_audio():
    from bentos.audio import AudioLimits, open_audio

    rng = np.random.default_rng([3, 5, FRAMES])
    params, a, b, _ = djsets.sample_mix(rng, FRAMES)
    y = djsets.render_mix(params, a, b, rng)
    buf = io.BytesIO()
    sf.write(buf, y, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    (window,) = list(open_audio(buf.getvalue(), AudioLimits(min_seconds=1.0)).windows())
    made = djsets.make_clip(seed=3, index=5, frames=FRAMES)
    np.testing.assert_allclose(window.audio_features, made["audio_features"].astype(np.float32), atol=1e-3)  # float16 storage
    np.testing.assert_allclose(window.mixing_features, made["mixing_features"], atol=1e-5)


def test_the_mix_has_its_beats_where_the_parameters_put_them():
    """A beat-matched blend of two tracks: onsets land on A's grid before and B's after."""
    import librosa

    from djserve.specs.labels import Key, Transition
    from training.datasets import synth

    p = MixParams(duration_s=FRAMES * HOP_LENGTH / SAMPLE_RATE, bpm=128.0, transition=Transition("cut", 3.0, 0),
                  first_beat_s=0.2, phase_offset=0.25, intensity_a=0.9, intensity_b=0.9)
    rng = np.random.default_rng(0)
    design = synth.draw_track("techno", Key(9, True), 0.9, rng)
    y = djsets.render_mix(p, design, design, rng)
    onsets = librosa.onset.onset_detect(y=y, sr=SAMPLE_RATE, units="time", hop_length=128)
    beats = np.concatenate([p.beats_a()[p.beats_a() < 3.0], p.beats_b()[p.beats_b() >= 3.0]])
    near = [np.min(np.abs(onsets - t)) for t in beats if 0.1 < t < p.duration_s - 0.1]
    assert np.median(near) < 0.02  # every kick within a frame of its beat


def test_a_stored_dataset_is_verified_on_load(tmp_path):
    arrays = {"x": np.arange(6, dtype=np.float32)}
    saved = store.save(tmp_path / "d", "djsets", {"seed": 0}, arrays, [{"i": 0}])
    assert store.load(saved.path, "djsets").content_hash == saved.content_hash
    with pytest.raises(store.DatasetError, match="is a 'djsets' dataset"):
        store.load(saved.path, "beats")
    (saved.path / store.ARRAYS).write_bytes((saved.path / store.ARRAYS).read_bytes()[:-10])
    with pytest.raises(store.DatasetError, match="does not match its manifest"):
        store.load(saved.path)
    with pytest.raises(store.DatasetError, match="does not exist"):
        store.load(tmp_path / "missing")
