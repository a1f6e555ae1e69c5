"""The beat clips: seeded, labelled with the beats they were rendered on, none where there is no beat."""

from __future__ import annotations

import numpy as np
import pytest

from djserve.audio_features import signal_features
from djserve.beats import FPS, frame_of
from training.datasets import beats as B
from training.datasets import synth


@pytest.fixture(scope="module")
def tiny():
    arrays, rows = B.build(B.Sizes(train=6, val=2, heldout=5), seed=3, workers=1)
    return arrays, rows


def _clips(kind: str, count: int, genre: str | None = None) -> list[B.Clip]:
    """The first `count` training clips of a kind (and genre: clip i of seed s has genre
    GENRES[(i + s) % 11], so only those indices are rendered) for seed 5."""
    step = len(synth.GENRES) if genre else 1
    first = (synth.GENRES.index(genre) - 5) % len(synth.GENRES) if genre else 0
    found = []
    for i in range(first, 600, step):
        c = B.make_clip(5, "train", i)
        if c.row["kind"] == kind:
            assert genre is None or c.row["genre"] == genre
            found.append(c)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} {kind} clips")


def test_same_seed_same_clips_and_another_seed_differs(tiny):
    arrays, rows = tiny
    again, again_rows = B.build(B.Sizes(train=6, val=2, heldout=5), seed=3, workers=1)
    assert rows == again_rows and arrays.keys() == again.keys()
    assert all(np.array_equal(arrays[k], again[k], equal_nan=True) for k in arrays)
    other = B.make_clip(4, "train", 0)
    assert not np.array_equal(other.audio, B.make_clip(3, "train", 0).audio)


def test_the_splits_have_their_sizes_and_held_out_clips_keep_their_audio(tiny):
    arrays, rows = tiny
    from training.datasets.store import StoredDataset

    splits = B.splits(StoredDataset(path=None, manifest={}, arrays=arrays, rows=rows))  # type: ignore[arg-type]
    assert [len(splits[s]) for s in B.SPLITS] == [6, 2, 5]
    train, held = splits["train"], splits["heldout"]
    assert {train.n_frames(i) for i in range(6)} == {int(B.TRAIN_S * B.SR) // 512}
    lengths = [held.n_frames(i) for i in range(5)]
    assert all(B.HELDOUT_S[0] * FPS - 1 <= n <= B.HELDOUT_S[1] * FPS for n in lengths) and len(set(lengths)) > 1
    for i in range(5):  # the stored mel is the stored audio's, as the gateway would compute it
        y = held.waveform(i)
        assert len(y) // 512 == held.n_frames(i)
        assert np.allclose(signal_features(y).beat_mel, held.frames(i), atol=2e-3)
        again = B.make_clip(3, "heldout", i)  # re-rendered from its seed: the same audio and beats
        stored = held.audio[held.audio_starts[i] : held.audio_starts[i + 1]]
        assert np.array_equal(np.round(again.audio * 32767).astype(np.int16), stored)
        assert np.array_equal(held.beat_times(i), again.beats)


def test_beat_labels_are_the_grid_the_tracks_were_rendered_on():
    for c in _clips("single", 3) + _clips("blend", 2):
        bpm, first = c.row["bpm"], c.row["first_beat_s"]
        k = np.round((c.beats - first) * bpm / 60)
        assert np.allclose(c.beats, first + k * 60 / bpm) and np.array_equal(np.diff(k), np.ones(len(k) - 1))
        assert c.beats[0] < 60 / bpm + 1e-9 and c.beats[-1] > len(c.audio) / B.SR - 60 / bpm - 0.02


def test_beat_labels_fall_on_the_kicks():
    """Four-on-the-floor at full intensity: the bass band rises on the labelled beat frames."""
    loud = [c for c in _clips("single", 6, genre="house") if c.row["intensity_a"] >= 0.4]
    assert loud
    for c in loud:
        low = signal_features(c.audio).beat_mel[:, :12].mean(axis=1)
        rise = np.maximum(np.diff(low, prepend=low[0]), 0)
        on_beat = np.array([rise[max(f - 1, 0) : f + 1].max() for f in frame_of(c.beats)])
        assert np.median(on_beat) > 4 * np.mean(rise)


def test_music_that_starts_inside_a_clip_has_beats_only_after_it_starts():
    for c in _clips("entry", 4):
        if c.row.get("entry") == "start":
            assert c.beats[0] >= c.row["entry_s"]
        else:
            assert c.beats[-1] <= c.row["entry_s"]


def test_no_beat_clips_have_no_beats(tiny):
    clips = _clips("nobeat", 6)
    assert all(len(c.beats) == 0 for c in clips)
    assert len({c.row["sound"] for c in clips}) > 2
    arrays, rows = tiny
    for split in B.SPLITS:
        kinds = [r["kind"] for r in rows if r["split"] == split]
        has = ~np.isnan(arrays[f"{split}_beats"][:, 0])
        assert np.array_equal(has, np.array([k != "nobeat" for k in kinds]))


def test_frame_targets():
    y = B.frame_targets(np.array([0.0, 1.0, 9.99]), 50)
    assert y[0] == 1 and y[1] == 0.5 and y[frame_of(1.0)] == 1 and y[frame_of(1.0) + 1] == 0.5
    assert y[49] == 0 and y.sum() == pytest.approx(1 + 0.5 + 1 + 0.5 + 0.5)
