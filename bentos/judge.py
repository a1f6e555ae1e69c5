"""Score a DJ set: decode, cut into windows, run judge + technical + creative, combine.

The next window is decoded and featurised (bentos.featurizer: a child process, or a thread) while
Triton scores the current one (a two-stage pipeline), so a 60-minute set never holds more than two
windows in memory and a 30 s clip costs little more than its parts. Window scores are averaged
weighted by window length; tempo and beats come from the whole set's onset envelope.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from bentos import audio
from bentos.backend import ModelBackend
from bentos.errors import GatewayError, InvalidInput
from bentos.featurizer import Featurizer, WindowStream
from bentos.metrics import stage, track
from djserve.schemas import AudioInfo, ScoreSheet, TempoInfo, TrackMetadata
from djserve.specs import creative, judge, technical
from djserve.specs.features import SAMPLE_RATE
from djserve.specs.genres import GENRE_WEIGHTS, GENRES, normalize_genre, weights_for

AUDIO_STATUS = {
    "empty_audio": 400,
    "corrupt_audio": 400,
    "unsupported_format": 415,
    "audio_too_large": 413,
    "audio_too_long": 413,
    "audio_too_short": 422,
}


def check_genre(genre: str) -> str:
    key = normalize_genre(genre)
    if key not in GENRES:
        raise InvalidInput("unknown_genre", f"unknown genre {genre!r}; known: {', '.join(GENRES)}", field="genre")
    return key


def open_set(data: bytes, limits: audio.AudioLimits, declared_format: str | None = None) -> audio.AudioSource:
    try:
        return audio.open_audio(data, limits, declared_format)
    except audio.AudioError as exc:
        raise as_gateway_error(exc) from None


def as_gateway_error(exc: audio.AudioError) -> GatewayError:
    return GatewayError(exc.code, exc.message, field="audio", status=AUDIO_STATUS.get(exc.code, 400))


@dataclass
class _Totals:
    frames: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    windows: int = 0

    def add(self, name: str, scores: np.ndarray, frames: np.ndarray) -> None:
        weighted = (scores * frames[:, None]).sum(axis=0)
        self.sums[name] = self.sums.get(name, 0) + weighted

    def mean(self, name: str) -> np.ndarray:
        return self.sums[name] / max(self.frames, 1)


async def score_set(
    backend: ModelBackend,
    featurizer: Featurizer,
    source: audio.AudioSource,
    battle_id: str,
    genre: str,
    tracks: list[TrackMetadata],
    pinned: int | None = None,
) -> ScoreSheet:
    start = time.perf_counter()
    routes = {
        "judge": backend.route("judge", battle_id, pinned),
        "technical": backend.route("technical", battle_id),
        "creative": backend.route("creative", battle_id),
    }
    tokens = audio.metadata_tokens(tracks)
    totals = _Totals()
    with track("judge", routes["judge"].version, genre):
        async with featurizer.open(source) as windows:
            bpm, beats = await _score_windows(backend, routes, windows, tokens, totals)
        with stage("postprocess"):
            components = totals.mean("component_scores")
            overall = float(np.dot(components, weights_for(genre)))
            return ScoreSheet(
                battle_id=battle_id,
                genre=genre,
                genre_known=genre in GENRE_WEIGHTS,
                overall_score=overall,
                components=_named(judge.SPEC, "component_scores", components),
                technical=_named(technical.SPEC, "technical_scores", totals.mean("technical_scores")),
                creative=_named(creative.SPEC, "creative_scores", totals.mean("creative_scores")),
                tempo=TempoInfo(bpm=round(bpm, 2), beats=[round(b, 3) for b in beats]),
                audio=AudioInfo(duration_seconds=round(source.duration_s, 3), sample_rate=SAMPLE_RATE, windows=totals.windows),
                model_versions={name: r.version for name, r in routes.items()},
                processing_time_ms=round((time.perf_counter() - start) * 1000, 1),
            )


async def _score_windows(backend, routes, windows: WindowStream, tokens, totals: _Totals) -> tuple[float, list[float]]:
    """A two-stage pipeline: the next window is featurised while Triton scores the current one, and
    the tempo is found alongside the last scoring. At most two windows are in memory."""

    async def score(batch: list[audio.Window]) -> None:
        for group in _same_length(batch):
            await _score_group(backend, routes, group, tokens, totals)

    features = asyncio.ensure_future(_preprocess(windows.next_batch()))
    scoring: asyncio.Future | None = None
    try:
        while batch := await features:
            if scoring is not None:
                await scoring
            scoring = asyncio.ensure_future(score(batch))
            features = asyncio.ensure_future(_preprocess(windows.next_batch()))
        (bpm, beats), _ = await asyncio.gather(_preprocess(windows.tempo()), scoring or asyncio.sleep(0))
        return bpm, beats
    finally:
        for task in (features, scoring):
            if task is not None and not task.done():
                task.cancel()


async def _preprocess(step):
    """Decoding, features and tempo: the "preprocess" stage of the prediction."""
    with stage("preprocess"):
        try:
            return await step
        except audio.AudioError as exc:  # a file that breaks mid-way (truncated, lying header)
            raise as_gateway_error(exc) from None


def _same_length(batch: list[audio.Window]) -> list[list[audio.Window]]:
    groups: dict[int, list[audio.Window]] = {}
    for w in batch:
        groups.setdefault(w.audio_features.shape[-1], []).append(w)
    return list(groups.values())


async def _score_group(backend, routes, group, tokens, totals: _Totals) -> None:
    arrays = {
        "audio_features": np.stack([w.audio_features for w in group]),
        "mixing_features": np.stack([w.mixing_features for w in group]),
        "metadata_tokens": np.repeat(tokens[None, :], len(group), axis=0),
    }
    # each member takes the inputs its spec names
    judged, tech, creat = await asyncio.gather(
        *(backend.infer(spec.name, spec.feed(arrays), routes[spec.name]) for spec in (judge.SPEC, technical.SPEC, creative.SPEC))
    )
    frames = np.array([w.audio_features.shape[-1] for w in group], dtype=np.float64)
    totals.add("component_scores", judged["component_scores"], frames)
    totals.add("technical_scores", tech["technical_scores"], frames)
    totals.add("creative_scores", creat["creative_scores"], frames)
    totals.frames += int(frames.sum())
    totals.windows += len(group)


def _named(spec, output: str, values: np.ndarray) -> dict[str, float]:
    return {label: round(float(v), 6) for label, v in zip(spec.output(output).labels, values)}
