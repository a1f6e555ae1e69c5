"""djserve.beats: activation curves with known beats decode to those beats and that tempo."""

from __future__ import annotations

import numpy as np
import pytest

from djserve.beats import FPS, MAX_BPM, MIN_BPM, decode, frame_of


def pulses(bpm: float, seconds: float, first: float = 0.13, noise: float = 0.0, height: float = 1.0,
           start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """An activation with a one-frame-wide peak on every beat (beats from `start` on), plus noise."""
    n = int(seconds * FPS)
    t = np.arange(n) / FPS
    beats = np.arange(first, seconds, 60.0 / bpm)
    beats = beats[(beats >= start) & (beats <= (n - 1) / FPS)]
    a = np.zeros(n)
    for b in beats:
        a = np.maximum(a, height * np.exp(-0.5 * ((t - b) * FPS) ** 2))
    a += np.random.default_rng(int(bpm * seconds)).uniform(0, noise, n)
    return np.clip(a, 0, 1), beats


@pytest.mark.parametrize("bpm", [62, 85, 120, 128, 140, 174, 195])
@pytest.mark.parametrize("seconds", [3.0, 6.0, 10.0])
def test_pulse_trains_give_their_tempo_and_beats(bpm, seconds):
    a, truth = pulses(bpm, seconds, noise=0.25)
    out = decode(a)
    assert out.bpm == pytest.approx(bpm, rel=0.01)
    assert len(out.times) == len(truth)
    assert np.max(np.abs(out.times - truth)) < 0.012  # half a frame
    assert out.confidence > (0.6 if len(truth) >= 4 else 0.4)  # three beats: less sure


def test_silence_and_a_flat_curve_give_no_tempo():
    silent = decode(np.zeros(430))
    assert len(silent.times) == 0 and silent.bpm is None and silent.confidence == 0.0
    faint = decode(np.full(430, 0.1))  # nowhere near a beat
    assert len(faint.times) == 0 and faint.bpm is None
    flat = decode(np.full(430, 0.6))  # everywhere "a beat": no pulse to lock to
    assert flat.confidence < 0.1


def test_the_marked_metrical_level_wins_over_its_multiples():
    """Weaker peaks on the offbeats (hats): still the beat; beats alone: not twice or half."""
    a, truth = pulses(126, 8.0)
    offbeats, _ = pulses(126, 8.0, first=0.13 + 30 / 126, height=0.4)
    out = decode(np.maximum(a, offbeats))
    assert out.bpm == pytest.approx(126, rel=0.01) and len(out.times) == len(truth)
    slow, _ = pulses(87, 8.0)
    assert decode(slow).bpm == pytest.approx(87, rel=0.01)


def test_music_starting_inside_the_chunk_has_beats_only_where_it_plays():
    a, truth = pulses(128, 8.0, start=3.0, noise=0.1)
    out = decode(a)
    assert out.times[0] == pytest.approx(truth[0], abs=0.012) and len(out.times) == len(truth)


def test_a_skipped_beat_inside_the_chunk_stays_on_the_grid():
    a, truth = pulses(120, 6.0)
    gap = frame_of(truth[5])
    a[gap - 2 : gap + 3] = 0.0
    out = decode(a)
    assert len(out.times) == len(truth) and np.max(np.abs(out.times - truth)) < 0.012


def test_short_chunks():
    one, truth = pulses(120, 0.3, first=0.1)
    out = decode(one)  # a lone beat: reported, but no tempo
    assert len(out.times) == 1 and out.times[0] == pytest.approx(truth[0], abs=0.012)
    assert out.bpm is None and out.confidence == 0.0
    two, _ = pulses(120, 1.0, first=0.2)
    out = decode(two.reshape(1, -1, 1))  # the model's [1, T, 1] output as it comes
    assert len(out.times) == 2 and out.bpm == pytest.approx(120, rel=0.03)
    assert 0 < out.confidence < 0.5  # two beats barely suggest a tempo


def test_the_search_range_is_documented():
    assert (MIN_BPM, MAX_BPM) == (60.0, 200.0)
