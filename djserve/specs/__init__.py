"""Model contracts: one `ModelSpec` per Triton model, the single source of truth.

Exported models (ONNX versions written by `exporters`): judge, technical, creative, beat_tracker,
sentiment, recommender. Python steps and ensembles: battle_judge(+_aggregate),
sentiment_pipeline(+_tokenize, _postprocess).
"""

from djserve.specs import battle_judge, beat_tracker, creative, judge, recommender, sentiment
from djserve.specs import sentiment_pipeline, technical
from djserve.specs.base import Batching, EnsembleStep, ModelSpec, TensorSpec

EXPORTED: dict[str, ModelSpec] = {
    s.name: s
    for s in (judge.SPEC, technical.SPEC, creative.SPEC, beat_tracker.SPEC, sentiment.SPEC, recommender.SPEC)
}
PYTHON_STEPS: dict[str, ModelSpec] = {
    s.name: s for s in (battle_judge.AGGREGATE, sentiment_pipeline.TOKENIZE, sentiment_pipeline.POSTPROCESS)
}
ENSEMBLES: dict[str, ModelSpec] = {s.name: s for s in (battle_judge.SPEC, sentiment_pipeline.SPEC)}
ALL: dict[str, ModelSpec] = {**EXPORTED, **PYTHON_STEPS, **ENSEMBLES}


def get(name: str) -> ModelSpec:
    try:
        return ALL[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(ALL)}") from None


__all__ = ["ALL", "ENSEMBLES", "EXPORTED", "PYTHON_STEPS", "Batching", "EnsembleStep", "ModelSpec", "TensorSpec", "get"]
