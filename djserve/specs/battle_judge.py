"""`battle_judge` ensemble: one call scores a DJ set window with judge, technical and creative.

judge, technical and creative depend only on the ensemble's inputs, so Triton runs them in
parallel; `battle_judge_aggregate` (a Python step) weights the judge components by genre
(`genres.GENRE_WEIGHTS`, unknown genre -> `genres.DEFAULT_WEIGHTS`) into `overall_score`.
"""

import json

from djserve.specs import creative, judge, technical
from djserve.specs.base import Batching, EnsembleStep, ModelSpec, TensorSpec
from djserve.specs.genres import DEFAULT_WEIGHTS, GENRE_WEIGHTS

GENRE = TensorSpec("genre", "BYTES", (1,), "genre name, UTF-8 (e.g. b'house')")
OVERALL_SCORE = TensorSpec("overall_score", "FP32", (1,), "genre-weighted judge score in [0,1]")
COMPONENT_SCORES = judge.SPEC.output("component_scores")

AGGREGATE = ModelSpec(
    name="battle_judge_aggregate",
    framework="python",
    inputs=(COMPONENT_SCORES, GENRE),
    outputs=(OVERALL_SCORE,),
    batching=Batching(max_batch_size=16, max_queue_delay_us=500),
    description="Genre weighting of the judge components",
    instance_kind="KIND_CPU",
    parameters={
        "genre_weights": json.dumps(GENRE_WEIGHTS, sort_keys=True),
        "default_weights": json.dumps(DEFAULT_WEIGHTS),
    },
)

SPEC = ModelSpec(
    name="battle_judge",
    framework="ensemble",
    inputs=(judge.AUDIO_FEATURES, judge.MIXING_FEATURES, creative.METADATA_TOKENS, GENRE),
    outputs=(
        OVERALL_SCORE,
        COMPONENT_SCORES,
        technical.SPEC.output("technical_scores"),
        creative.SPEC.output("creative_scores"),
    ),
    batching=Batching(max_batch_size=16, dynamic=False),
    description="Full score sheet of one DJ set window",
    decisions=__doc__ or "",
    steps=(
        EnsembleStep(
            "judge",
            {"audio_features": "audio_features", "mixing_features": "mixing_features"},
            {"component_scores": "component_scores"},
        ),
        EnsembleStep(
            "technical",
            {"audio_features": "audio_features", "mixing_features": "mixing_features"},
            {"technical_scores": "technical_scores"},
        ),
        EnsembleStep(
            "creative",
            {"mixing_features": "mixing_features", "metadata_tokens": "metadata_tokens"},
            {"creative_scores": "creative_scores"},
        ),
        EnsembleStep(
            "battle_judge_aggregate",
            {"component_scores": "component_scores", "genre": "genre"},
            {"overall_score": "overall_score"},
        ),
    ),
)
