"""`judge`: the AI Judge (PyTorch) with the design documents' registered contract.

Decisions:
- Output is only `component_scores` [B,4]. The design's forward returns a nested dict with a per-genre
  `overall_score`; the genre weighting moves to the `battle_judge` ensemble, so one model serves
  every genre instead of one model per genre (the design documents' `ai-judge-{genre}`).
- The main design's architecture is kept (the lab variant needs MFCC/bpm inputs no contract
  defines), with two changes training showed necessary: the mixing features are standardised by
  buffers fitted to the training data, and the mixing LSTM's outputs are averaged over time
  instead of keeping the last step (a window's scores are means over the window; the last step
  of 128 remembers its last seconds). Mixing features are [B,S,32] (not the lab variant's [10,4]); the
  gateway defines the 32 (`djserve.specs.features`).
- What the four scores mean is defined by the label model, `djserve.specs.labels`.
- Time and steps are dynamic (nominally 1024 frames); at least 4 frames (two 2x2 max-pools).
"""

from djserve.specs.base import Batching, ModelSpec, TensorSpec
from djserve.specs.genres import JUDGE_COMPONENTS

AUDIO_FEATURES = TensorSpec(
    "audio_features",
    "FP32",
    (1, 128, "frames"),
    "128-bin log-mel, dB scaled to [0,1] by (dB+80)/80, nominally 1024 frames",
)
MIXING_FEATURES = TensorSpec(
    "mixing_features", "FP32", ("steps", 32), "32 mixing descriptors per step, each in [0,1]"
)

SPEC = ModelSpec(
    name="judge",
    framework="pytorch",
    inputs=(AUDIO_FEATURES, MIXING_FEATURES),
    outputs=(
        TensorSpec(
            "component_scores", "FP32", (4,), "sigmoid scores in [0,1]", labels=JUDGE_COMPONENTS
        ),
    ),
    batching=Batching(max_batch_size=16, max_queue_delay_us=0),
    description="AI Judge: four component scores of a DJ set window",
    decisions=__doc__ or "",
    background=True,  # window by window of uploaded sets
    parity_axes=({"frames": 64, "steps": 8}, {"frames": 1024, "steps": 64}, {"frames": 200, "steps": 1}),
)
