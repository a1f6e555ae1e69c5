"""`beat_tracker`: RealTimeBeatTracker's two networks (Keras) as one model.

Outputs:
- `beat_activation` [B,T,1] (the tempo tracker's branch, renamed from the seed's "tempo
  confidence"): per frame, the probability that a beat falls on that frame. Frames are the
  contract's 22050 Hz / hop 512 grid (about 43 a second); `djserve.beats.decode` turns the curve
  into beat times, a tempo in BPM and a tempo confidence.
- `beat_probability` [B,1] (the beat detector's branch): the probability that the chunk has a beat
  at all (music with a pulse rather than pads, noise, crowd or silence).

Decisions:
- One model, one input `mel_frames` [B,T,84] (84-bin mel in dB scaled to [0,1]), both outputs, so
  a stream chunk is one inference.
- Conv1D padding="same" so `beat_activation` has one value per input frame ([B,T,1]) instead of
  the seed's T-4; the beat detector is unchanged (valid padding, needs T >= 11 frames).
- The seed's per-frame output was an undefined "tempo confidence" read by an undefined
  `estimate_bpm`; a per-frame beat activation is what a beat tracker can be trained
  on (exact beat times) and what tempo and beat times are decoded from.
"""

from djserve.specs.base import Batching, ModelSpec, TensorSpec

SPEC = ModelSpec(
    name="beat_tracker",
    framework="keras",
    inputs=(TensorSpec("mel_frames", "FP32", ("frames", 84), "84-bin mel, dB scaled to [0,1]"),),
    outputs=(
        TensorSpec("beat_activation", "FP32", ("frames", 1), "per frame: probability that a beat falls on it"),
        TensorSpec("beat_probability", "FP32", (1,), "probability the chunk has a beat at all"),
    ),
    batching=Batching(max_batch_size=32, preferred_batch_sizes=(8, 16, 32), max_queue_delay_us=1000),
    description="Real-time beat tracking on 84-bin mel frames",
    decisions=__doc__ or "",
    parity_axes=({"frames": 43}, {"frames": 256}, {"frames": 11}),
)
