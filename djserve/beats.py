"""A beat activation curve -> beat times, a tempo and how sure that tempo is.

The beat tracker's `beat_activation` gives, per frame, the probability that a beat falls on it.
Frames are the contract's grid: FPS = 22050 / 512 (about 43.07) a second, frame t centred on
t / FPS seconds from the chunk's start.

A live chunk is 0.3-10 s of a DJ set, whose tempo does not drift within that, so decoding is a
search over regular grids rather than free peak picking: every tempo from MIN_BPM to MAX_BPM (60-200
BPM, in steps of 0.5 %) and every phase (one-frame steps), fitted where the activation reaches the
threshold (music may start or stop inside the chunk). A grid's score is its contrast, the mean
activation on the grid minus half the mean at its half or third points (whichever is higher),
less a mild preference for tempi near 120 BPM (0.2 per octave squared: 0.07 at 80 or 180 BPM, a
tie-breaker). Contrast picks the metrical level the model marks: at twice the beat period the half
points land on beats, at three times the third points do, and at half the period every other grid
point lands between beats; the half weight keeps syncopated hits on the offbeats (a drum & bass
kick on the "and" of two) from pushing the grid to double time. The winning grid's points then
move to the activation's peak within 15 % of a period (sub-frame, by a parabola through the peak),
the grid is trimmed to run from the first to the last point with activation >= threshold, and the
tempo is the least-squares slope of the beats over their indices.

Tempo confidence in [0,1] = (on-grid mean - off-grid mean) / max(on-grid mean, 0.5) times a support factor
min(1, (beats - 1) / 3): two beats barely suggest a tempo, four or more establish it. Silence, an
activation nowhere above the threshold, or a chunk too short for two beats of MAX_BPM gives no
tempo (bpm None, confidence 0); a lone confident peak is still reported as a beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.ndimage import maximum_filter1d
from scipy.signal import find_peaks

from djserve.specs.features import HOP_LENGTH, SAMPLE_RATE

FPS = SAMPLE_RATE / HOP_LENGTH
MIN_BPM = 60.0
MAX_BPM = 200.0
THRESHOLD = 0.3
"""Activation a beat must reach to count as heard (the grid's first and last beats, lone peaks)."""
_BPM_STEP = 1.005  # grid tempi 0.5 % apart: over 20 beats at most 0.05 beat off before refinement
_SNAP = 0.15  # how far (fraction of a period) a grid point may move to the activation's peak
_OFF_WEIGHT = 0.5  # of the half / third points' mean in a grid's score
_PRIOR = 0.2  # score lost per squared octave away from 120 BPM
_FULL_SUPPORT = 4  # beats from which the tempo counts as established


@dataclass(frozen=True)
class Beats:
    times: np.ndarray
    """Beat times in seconds from the chunk's start, ascending."""
    bpm: float | None
    """Tempo of the beats; None with fewer than two."""
    confidence: float
    """How sure the tempo is, in [0,1]; 0 without one."""


def decode(
    activation: ArrayLike,
    fps: float = FPS,
    min_bpm: float = MIN_BPM,
    max_bpm: float = MAX_BPM,
    threshold: float = THRESHOLD,
) -> Beats:
    """Beats and tempo of one chunk's activation ([T], [T,1] or [1,T,1], values in [0,1])."""
    a = np.clip(np.nan_to_num(np.asarray(activation, np.float64).ravel()), 0.0, 1.0)
    none = Beats(np.zeros(0), None, 0.0)
    if len(a) == 0 or a.max() < threshold:
        return none
    # The grid is fitted where the music is heard (music may start or stop inside the chunk):
    # silent frames would pull every grid's mean down, the densest grids' the most.
    heard = np.flatnonzero(a >= threshold)
    lo, hi = max(0, heard[0] - 2), min(len(a), heard[-1] + 3)
    grid = _best_grid(a[lo:hi], 60.0 * fps / max_bpm, 60.0 * fps / min_bpm, 60.0 * fps / 120.0)
    if grid is None:  # too short for two beats: at most the confident peaks, no tempo
        peaks, _ = find_peaks(a, height=threshold, distance=max(1, int(60.0 * fps / max_bpm)))
        return Beats(peaks / fps, None, 0.0) if len(peaks) else none
    period, phase, on, off = grid
    phase = (phase + lo) % period
    reach = max(1, int(round(_SNAP * period)))
    # The grid, one point further each way when that point is within reach of the chunk: its peak
    # may be inside. It counts only if its peak is a true peak, not the chunk's edge.
    points = phase + period * np.arange(-1, int((len(a) - 1 + reach - phase) // period) + 1)
    points = points[points >= -reach]
    frames, heights = _snap(a, points, reach)
    outside = (points < 0) | (points > len(a) - 1)
    edge = (np.rint(frames) <= 0) | (np.rint(frames) >= len(a) - 1)
    points, frames, heights = points[~(outside & edge)], frames[~(outside & edge)], heights[~(outside & edge)]
    heard = np.flatnonzero(heights >= threshold)
    if len(heard) == 0:
        return none
    keep = slice(heard[0], heard[-1] + 1)
    # Between heard beats a quiet grid point is a beat the music skips (a kick-free bar): it stays
    # on the grid instead of snapping to whatever small bump is near.
    frames = np.where(heights >= threshold, frames, points)[keep]
    times = frames / fps
    if len(times) < 2:
        return Beats(times, None, 0.0)
    slope = np.polyfit(np.arange(len(frames)), frames, 1)[0]
    support = min(1.0, (len(times) - 1) / (_FULL_SUPPORT - 1))
    confidence = float(np.clip((on - off) / max(on, 0.5), 0.0, 1.0)) * support
    return Beats(times, float(60.0 * fps / slope), round(confidence, 6))


def _best_grid(
    a: np.ndarray, min_period: float, max_period: float, period_120: float
) -> tuple[float, float, float, float] | None:
    """(period, phase, on-grid mean, off-grid mean) of the regular grid with the most contrast,
    over periods in frames with at least two grid points in the chunk; None if none fits.
    Grids in bands of about 40 periods: [periods, phases, points] index arrays."""
    n = len(a)
    wide = maximum_filter1d(a, 3, mode="constant")  # a beat one frame off the grid still counts
    periods = min_period * _BPM_STEP ** np.arange(int(np.log(max_period / min_period) / np.log(_BPM_STEP)) + 1)
    periods = periods[periods <= n - 1]
    if len(periods) == 0:
        return None
    best, best_score = None, -np.inf
    for band in np.array_split(periods, max(1, len(periods) // 40)):  # bands: less padding
        p = band[:, None, None]
        phase = np.arange(int(np.ceil(band[-1])), dtype=np.float64)[None, :, None]
        grid = phase + p * np.arange(int((n - 1) // band[0]) + 1)[None, None, :]
        on = _mean_at(wide, grid)
        usable = ((grid <= n - 1).sum(axis=-1) >= 2) & (phase[..., 0] < p[..., 0])
        thirds = np.concatenate([grid + p / 3, grid + 2 * p / 3], axis=-1)
        off = np.maximum(_mean_at(wide, grid + p / 2), _mean_at(wide, thirds))
        prior = _PRIOR * np.log2(p[..., 0] / period_120) ** 2
        score = np.where(usable, on - _OFF_WEIGHT * off - prior, -np.inf)
        i, j = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[i, j] > best_score:
            best_score, best = score[i, j], (float(band[i]), float(j), float(on[i, j]), float(off[i, j]))
    return best


def _mean_at(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Mean of x at the (rounded) positions along the last axis that fall inside it; 0 where none do."""
    idx = np.rint(positions).astype(np.int32)
    inside = idx < len(x)  # positions are never negative
    values = x[np.minimum(idx, len(x) - 1)] * inside
    count = inside.sum(axis=-1)
    return np.divide(values.sum(axis=-1), count, out=np.zeros(count.shape), where=count > 0)


def _snap(a: np.ndarray, points: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Each grid point moved to the highest activation within `reach` frames, at sub-frame
    precision (a parabola through the peak and its neighbours), and that peak's height."""
    n = len(a)
    frames, heights = np.empty(len(points)), np.empty(len(points))
    for j, g in enumerate(points):
        lo, hi = max(0, int(round(g)) - reach), min(n, int(round(g)) + reach + 1)
        i = lo + int(np.argmax(a[lo:hi]))
        shift = 0.0
        if 0 < i < n - 1:
            curve = a[i - 1] - 2 * a[i] + a[i + 1]
            if curve < 0:
                shift = float(np.clip(0.5 * (a[i - 1] - a[i + 1]) / curve, -0.5, 0.5))
        frames[j], heights[j] = i + shift, a[i]
    return frames, heights


def frame_of(seconds: ArrayLike, fps: float = FPS) -> np.ndarray:
    """The frame whose centre is nearest to each time."""
    return np.rint(np.asarray(seconds, np.float64) * fps).astype(np.int64)
