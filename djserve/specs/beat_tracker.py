"""`beat_tracker`: RealTimeBeatTracker's two networks (Keras, S1:224-283) as one model.

Decisions:
- One model, one input `mel_frames` [B,T,84] (84-bin mel in dB scaled to [0,1]), two outputs: the
  tempo tracker's per-frame confidence and the beat detector's probability, so a stream chunk
  is one inference.
- Conv1D padding="same" so `tempo_confidence` has one value per input frame ([B,T,1]) instead of
  the seed's T-4; the beat detector is unchanged (valid padding, needs T >= 11 frames).
"""

from djserve.specs.base import Batching, ModelSpec, TensorSpec

SPEC = ModelSpec(
    name="beat_tracker",
    framework="keras",
    inputs=(TensorSpec("mel_frames", "FP32", ("frames", 84), "84-bin mel, dB scaled to [0,1]"),),
    outputs=(
        TensorSpec("tempo_confidence", "FP32", ("frames", 1), "per-frame tempo confidence"),
        TensorSpec("beat_probability", "FP32", (1,), "probability the chunk holds a beat"),
    ),
    batching=Batching(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=1000),
    description="Real-time beat tracking on 84-bin mel frames",
    decisions=__doc__ or "",
    parity_axes=({"frames": 43}, {"frames": 256}, {"frames": 11}),
)
