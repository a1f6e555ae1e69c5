"""`creative`: CreativeAnalysisModel (TensorFlow/Keras).

Decisions:
- The audio-feature sequence is the judge's `mixing_features` [B,S,32]: frame descriptors over
  the set are what energy flow and track selection are judged on, and the ensemble feeds both
  models one tensor.
- Track metadata arrives as token ids [B,L] (vocab 10,000, id 0 = padding/unknown); the gateway
  hashes metadata words into that vocabulary. L >= 1.
- Conv1D uses padding="same" (the seed's valid padding needs S >= 5).
- The mixing features are standardised first (fixed statistics of the training data, in the
  model), and pooled by a mean over time, not the seed's max: a max grows with the window's length,
  so a model trained on 12 s clips scored served 24 s windows with a bias (held-out R^2 -0.43).
- Four heads concatenated, then a per-head affine calibration fitted on validation clips (slope
  in [0,1] towards the training mean) and a clip to [0,1]: heads the data barely determines
  (genre mixing, track selection) are shrunk towards their mean instead of scoring worse than a
  constant. Identity in an untrained model. Output `creative_scores` [B,4].
"""

from djserve.specs.base import Batching, ModelSpec, TensorSpec
from djserve.specs.judge import MIXING_FEATURES

VOCAB_SIZE = 10_000

METADATA_TOKENS = TensorSpec(
    "metadata_tokens",
    "INT64",
    ("tokens",),
    "track metadata words hashed into [0, 10000); 0 = padding",
    value_range=(0, VOCAB_SIZE),
)

SPEC = ModelSpec(
    name="creative",
    framework="keras",
    inputs=(MIXING_FEATURES, METADATA_TOKENS),
    outputs=(
        TensorSpec(
            "creative_scores",
            "FP32",
            (4,),
            "sigmoid scores in [0,1]",
            labels=("track_selection", "energy_flow", "genre_mixing", "originality"),
        ),
    ),
    batching=Batching(max_batch_size=16, preferred_batch_sizes=(4, 8, 16), max_queue_delay_us=2000),
    description="Creative analysis: selection, energy flow, genre mixing, originality",
    decisions=__doc__ or "",
    background=True,  # window by window of uploaded sets
    parity_axes=({"steps": 16, "tokens": 8}, {"steps": 64, "tokens": 1}, {"steps": 3, "tokens": 24}),
)
