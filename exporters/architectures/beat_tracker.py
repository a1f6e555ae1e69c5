"""RealTimeBeatTracker's two networks as one functional Keras 3 model.

See `djserve.specs.beat_tracker`: one input `mel_frames`, the per-frame branch with padding="same"
(one beat activation per frame), the beat branch unchanged (valid padding, needs >= 11 frames).
"""

from __future__ import annotations

import keras
from keras import layers

from djserve.specs import beat_tracker as _spec

SPEC = _spec.SPEC

_MEL = SPEC.input("mel_frames")  # [B, frames, 84]


def build_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    mel = keras.Input(shape=(None, _MEL.dims[1]), dtype="float32", name=_MEL.name)

    t = layers.Conv1D(32, 3, activation="relu", padding="same", name="tempo_conv1")(mel)
    t = layers.Conv1D(64, 3, activation="relu", padding="same", name="tempo_conv2")(t)
    t = layers.LSTM(50, return_sequences=True, name="tempo_lstm")(t)
    activation = layers.Dense(1, activation="sigmoid", name="beat_activation")(t)  # [B, T, 1]

    b = layers.Conv1D(16, 7, activation="relu", name="beat_conv1")(mel)
    b = layers.Conv1D(32, 3, activation="relu", name="beat_conv2")(b)
    b = layers.Conv1D(64, 3, activation="relu", name="beat_conv3")(b)
    b = layers.GlobalMaxPooling1D(name="beat_pool")(b)
    b = layers.Dense(32, activation="relu", name="beat_dense")(b)
    beat = layers.Dense(1, activation="sigmoid", name="beat_probability")(b)  # [B, 1]

    outputs = {"beat_activation": activation, "beat_probability": beat}
    return keras.Model(inputs=mel, outputs=[outputs[t.name] for t in SPEC.outputs], name=SPEC.name)
