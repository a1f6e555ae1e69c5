"""CreativeAnalysisModel as a functional Keras 3 model.

See `djserve.specs.creative` for the decisions: audio branch on `mixing_features` with
padding="same", metadata branch on hashed `metadata_tokens`, four heads -> `creative_scores`.
"""

from __future__ import annotations

import keras
from keras import layers

from djserve.specs import creative as _spec
from exporters.architectures.keras_layers import standardise

SPEC = _spec.SPEC

_AUDIO = SPEC.input("mixing_features")  # [B, steps, 32]
_TOKENS = SPEC.input("metadata_tokens")  # [B, tokens]
_HEADS = SPEC.outputs[0].labels  # track_selection, energy_flow, genre_mixing, originality


def build_model(seed: int = 0, mixing_mean=None, mixing_variance=None, calibration=None) -> keras.Model:
    """`mixing_mean` / `mixing_variance`: the standardisation of the mixing features; `calibration`:
    (scale, offset) per head, applied to the sigmoid scores and clipped to [0,1]. Training sets both
    from its data; they are saved in the model's config. Default: identity."""
    keras.utils.set_random_seed(seed)
    audio = keras.Input(shape=(None, _AUDIO.dims[1]), dtype="float32", name=_AUDIO.name)
    tokens = keras.Input(shape=(None,), dtype="int64", name=_TOKENS.name)

    a = standardise(_AUDIO.dims[1], mixing_mean, mixing_variance)(audio)
    a = layers.Conv1D(128, 3, activation="relu", padding="same", name="audio_conv1")(a)
    a = layers.BatchNormalization(name="audio_bn1")(a)
    a = layers.Conv1D(256, 3, activation="relu", padding="same", name="audio_conv2")(a)
    a = layers.BatchNormalization(name="audio_bn2")(a)
    # a mean over time reads a 12 s training clip and a 24 s served window alike; the seed's max
    # grew with the window's length and biased every served score
    a = layers.GlobalAveragePooling1D(name="audio_pool")(a)
    a = layers.Dense(128, activation="relu", name="audio_dense")(a)

    m = layers.Embedding(_spec.VOCAB_SIZE, 64, name="metadata_embedding")(tokens)
    m = layers.LSTM(64, name="metadata_lstm")(m)
    m = layers.Dense(64, activation="relu", name="metadata_dense")(m)

    x = layers.Concatenate(axis=-1, name="fusion_concat")([a, m])
    x = layers.Dense(256, activation="relu", name="fusion")(x)
    heads = [layers.Dense(1, activation="sigmoid", name=label)(x) for label in _HEADS]
    out = layers.Concatenate(axis=-1, name="raw_scores")(heads)
    scale, offset = calibration or ([1.0] * len(_HEADS), [0.0] * len(_HEADS))
    out = layers.Rescaling([float(v) for v in scale], [float(v) for v in offset], name="calibration")(out)
    out = layers.ReLU(max_value=1.0, name=SPEC.outputs[0].name)(out)
    return keras.Model(inputs=[audio, tokens], outputs=out, name=SPEC.name)
