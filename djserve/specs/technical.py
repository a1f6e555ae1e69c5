"""`technical`: TechnicalPerformanceModel (TensorFlow/Keras).

Decisions (the design documents' call() cannot run):
- Input is the judge's tensor, `audio_features` [B,1,128,T], so one ensemble input feeds both.
  The model transposes it to channels-last [B,128,T,1] itself.
- The seed pools time away (GlobalAveragePooling2D) and then reshapes to [B,T,256]. Here the conv
  stack (64/128/256 filters, two 2x2 max-pools, as the seed) is averaged over the mel axis only,
  giving a [B,T/4,256] sequence; LSTM(128, seq) -> MultiHeadAttention(8 heads, key_dim 64) over
  time (the seed attended over a length-1 sequence) -> LSTM(64) -> four sigmoid heads.
- A second input, the judge's `mixing_features` [B,steps,32], joins before the heads (fixed
  standardisation, two 1-D convs, mean over time): a [T/4] spectrogram sequence alone did not
  learn beat phase, tempo mismatch or pitch wobble from the generated sets (held-out R^2 0.03, the
  contrast pairs at chance); the onset, pulse, tempo and tuning descriptors carry them.
- The four heads are concatenated into one output `technical_scores` [B,4] named by `labels`.
"""

from djserve.specs.base import Batching, ModelSpec, TensorSpec
from djserve.specs.judge import AUDIO_FEATURES, MIXING_FEATURES

SPEC = ModelSpec(
    name="technical",
    framework="keras",
    inputs=(AUDIO_FEATURES, MIXING_FEATURES),
    outputs=(
        TensorSpec(
            "technical_scores",
            "FP32",
            (4,),
            "sigmoid scores in [0,1]",
            labels=("bpm_accuracy", "beat_alignment", "transition_quality", "pitch_stability"),
        ),
    ),
    batching=Batching(max_batch_size=16, preferred_batch_sizes=(4, 8, 16), max_queue_delay_us=2000),
    description="Technical performance: beat matching, alignment, transitions, pitch",
    decisions=__doc__ or "",
    background=True,  # window by window of uploaded sets
    parity_axes=({"frames": 64, "steps": 8}, {"frames": 256, "steps": 32}, {"frames": 36, "steps": 1}),
)
