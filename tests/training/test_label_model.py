"""The label model (djserve/specs/labels.py): what each score means, checked on mixes whose
quality is known."""

from __future__ import annotations

import numpy as np
import pytest

from djserve.specs.labels import Detune, Key, MixParams, Transition, curves, harmony, scores

FRAMES = 1024  # one gateway window


def mix(**overrides) -> MixParams:
    base = dict(
        duration_s=23.78, bpm=128.0, transition=Transition("eq_swap", 4.0, 32), key_a=Key(9, True), key_b=Key(9, True),
        intensity_a=0.6, intensity_b=0.6, genre_a="house", genre_b="house",
    )
    return MixParams(**{**base, **overrides})


def test_a_clean_beat_matched_blend_is_technically_perfect():
    s = scores(mix(), FRAMES)
    for head in ("bpm_accuracy", "beat_alignment", "transition_quality", "pitch_stability"):
        assert s[f"technical.{head}"] == pytest.approx(1.0, abs=1e-6), head
    assert s["judge.technical_skill"] == pytest.approx(1.0, abs=1e-6)
    assert s["judge.track_selection"] == pytest.approx(1.0)


def test_tempo_mismatch_lowers_bpm_accuracy_only_while_both_play():
    c = curves(mix(tempo_error=0.03), FRAMES)["technical.bpm_accuracy"]
    t = np.arange(FRAMES) * 512 / 22050
    assert np.all(c[t < 4.0] == 1.0)  # A alone
    assert c[(t > 8) & (t < 16)].min() < 0.2  # both at full level: 3 % is a train wreck
    assert scores(mix(tempo_error=0.005), FRAMES)["technical.bpm_accuracy"] > scores(mix(tempo_error=0.03), FRAMES)["technical.bpm_accuracy"]


@pytest.mark.parametrize("phase, low", [(0.01, False), (0.2, True)])
def test_beat_phase_offset_sets_beat_alignment(phase, low):
    value = scores(mix(phase_offset=phase), FRAMES)["technical.beat_alignment"]
    assert (value < 0.7) is low, value


def test_a_hard_cut_is_judged_on_where_the_new_track_lands():
    on = scores(mix(transition=Transition("cut", 10.0, 0), phase_offset=0.0), FRAMES)
    off = scores(mix(transition=Transition("cut", 10.0, 0), phase_offset=0.3), FRAMES)
    assert off["technical.beat_alignment"] < on["technical.beat_alignment"] == pytest.approx(1.0)
    assert on["technical.transition_quality"] < 1.0  # a cut is a basic technique


def test_harmony_follows_the_camelot_wheel():
    a_minor = Key(9, True)
    assert harmony(a_minor, a_minor) == 1.0
    assert harmony(a_minor, Key(4, True)) == 0.9  # E minor: a fifth up
    assert harmony(a_minor, Key(0, False)) == 0.9  # C major: relative
    assert harmony(a_minor, Key(7, True)) == 0.55  # G minor: two steps
    assert harmony(a_minor, Key(3, True)) == 0.15  # Eb minor: a clash
    same = scores(mix(), FRAMES)["judge.track_selection"]
    clash = scores(mix(key_b=Key(3, True)), FRAMES)["judge.track_selection"]
    assert clash < 0.8 < same


def test_a_loudness_jump_hurts_energy_flow_more_when_abrupt():
    jump = dict(intensity_a=0.2, intensity_b=1.0, gain_error_db=6.0)  # 12.4 dB louder
    cut = scores(mix(transition=Transition("cut", 10.0, 0), **jump), FRAMES)["judge.energy_flow"]
    blend = scores(mix(transition=Transition("eq_swap", 4.0, 32), **jump), FRAMES)
    level = scores(mix(transition=Transition("cut", 10.0, 0)), FRAMES)["judge.energy_flow"]
    assert level == pytest.approx(1.0)
    assert cut < 1.0 and blend["judge.energy_flow"] < 1.0
    # per second heard, the cut is worse: its span is shorter, its penalty larger
    cut_curve = curves(mix(transition=Transition("cut", 10.0, 0), **jump), FRAMES)["judge.energy_flow"]
    blend_curve = curves(mix(**jump), FRAMES)["judge.energy_flow"]
    assert cut_curve.min() < blend_curve.min()


def test_pitch_a_lone_offset_is_not_heard_but_a_detuned_blend_and_a_wobble_are():
    lone = scores(mix(transition=Transition("none"), detune_a=Detune(offset_cents=60)), FRAMES)
    assert lone["technical.pitch_stability"] == pytest.approx(1.0)
    detuned_blend = scores(mix(detune_b=Detune(offset_cents=60)), FRAMES)["technical.pitch_stability"]
    wobble = scores(mix(transition=Transition("none"), detune_a=Detune(wobble_cents=60, rate_hz=0.5)), FRAMES)
    assert detuned_blend < 0.8
    assert wobble["technical.pitch_stability"] < 0.6


def test_genre_mixing_rewards_a_smooth_change_of_genre():
    same = scores(mix(), FRAMES)["creative.genre_mixing"]
    smooth = scores(mix(genre_b="techno"), FRAMES)["creative.genre_mixing"]
    abrupt = scores(mix(genre_b="techno", transition=Transition("cut", 10.0, 0)), FRAMES)["creative.genre_mixing"]
    assert smooth > abrupt > same


def test_a_span_scores_the_mean_of_its_frames_so_windows_add_up_to_the_set():
    p = mix(tempo_error=0.02, phase_offset=0.1, key_b=Key(3, True), detune_b=Detune(wobble_cents=30))
    whole = scores(p, FRAMES)
    first, second = scores(p, FRAMES, 0, 400), scores(p, FRAMES, 400, FRAMES)
    for key, value in whole.items():
        assert value == pytest.approx((400 * first[key] + (FRAMES - 400) * second[key]) / FRAMES), key
    assert all(0.0 <= v <= 1.0 for v in whole.values())


def test_judge_technical_skill_weights_the_technical_heads():
    p = mix(tempo_error=0.02, phase_offset=0.15, detune_b=Detune(offset_cents=40))
    s = scores(p, FRAMES)
    expected = (0.30 * s["technical.bpm_accuracy"] + 0.30 * s["technical.beat_alignment"]
                + 0.25 * s["technical.transition_quality"] + 0.15 * s["technical.pitch_stability"])
    assert s["judge.technical_skill"] == pytest.approx(expected)
