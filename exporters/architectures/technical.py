"""TechnicalPerformanceModel as a functional Keras 3 model.

See `djserve.specs.technical` for the decisions: channels-last conv stack as the seed, mean over
the mel axis only -> [B, T/4, 256] sequence, LSTM(128) -> self-attention over time -> LSTM(64),
and a second branch on the `mixing_features` (fixed standardisation, two 1-D convs, mean over
time) joined to it before the four sigmoid heads, concatenated into `technical_scores`.
"""

from __future__ import annotations

import keras
from keras import layers

from djserve.specs import technical as _spec
from exporters.architectures.keras_layers import standardise

SPEC = _spec.SPEC

_INPUT = SPEC.input("audio_features")  # [B, 1, 128, frames]
_MIXING = SPEC.input("mixing_features")  # [B, steps, 32]
_MELS = _INPUT.dims[1]
_POOLS = 2  # two 2x2 max-pools, as the seed
SEQUENCE_STRIDE = 2**_POOLS
"""Frames per step of the conv sequence."""
_HEADS = SPEC.outputs[0].labels  # bpm_accuracy, beat_alignment, transition_quality, pitch_stability


def build_model(seed: int = 0, mixing_mean=None, mixing_variance=None) -> keras.Model:
    """`mixing_mean` / `mixing_variance`: the standardisation of the mixing features (training sets
    them from its data; they are saved in the model's config). Default: identity."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(_INPUT.dims[0], _MELS, None), dtype="float32", name=_INPUT.name)
    mixing = keras.Input(shape=(None, _MIXING.dims[1]), dtype="float32", name=_MIXING.name)
    x = layers.Permute((2, 3, 1), name="to_channels_last")(inp)  # [B, 128, T, 1]

    x = layers.Conv2D(64, (3, 3), activation="relu", padding="same", name="conv1")(x)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = layers.Conv2D(128, (3, 3), activation="relu", padding="same", name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool2")(x)
    x = layers.Conv2D(256, (3, 3), activation="relu", padding="same", name="conv3")(x)
    x = layers.BatchNormalization(name="bn3")(x)  # [B, 128/4, T/4, 256]

    # Mean over the mel axis only, with built-in layers (no Lambda, so .keras files load in safe mode).
    mel_left = _MELS // 2**_POOLS
    x = layers.AveragePooling2D((mel_left, 1), name="mel_mean")(x)  # [B, 1, T/4, 256]
    x = layers.Reshape((-1, 256), name="to_sequence")(x)  # [B, T/4, 256]

    x = layers.LSTM(128, return_sequences=True, name="lstm1")(x)
    x = layers.Dropout(0.3, name="dropout1")(x)
    x = layers.MultiHeadAttention(num_heads=8, key_dim=64, name="attention")(x, x)
    x = layers.LSTM(64, name="lstm2")(x)
    x = layers.Dropout(0.3, name="dropout2")(x)

    m = standardise(_MIXING.dims[1], mixing_mean, mixing_variance)(mixing)
    m = _mixing_branch(m)
    x = layers.Concatenate(axis=-1, name="fusion_concat")([x, m])
    heads = [layers.Dense(1, activation="sigmoid", name=label)(x) for label in _HEADS]
    out = layers.Concatenate(axis=-1, name=SPEC.outputs[0].name)(heads)
    return keras.Model(inputs=[inp, mixing], outputs=out, name=SPEC.name)


_MIXING_LAYERS = (
    ("mixing_conv1", lambda: layers.Conv1D(128, 3, activation="relu", padding="same", name="mixing_conv1")),
    ("mixing_bn1", lambda: layers.BatchNormalization(name="mixing_bn1")),
    ("mixing_conv2", lambda: layers.Conv1D(128, 3, activation="relu", padding="same", name="mixing_conv2")),
    ("mixing_bn2", lambda: layers.BatchNormalization(name="mixing_bn2")),
    # a mean over time reads a 12 s clip and a 24 s window alike (a max would not)
    ("mixing_pool", lambda: layers.GlobalAveragePooling1D(name="mixing_pool")),
    ("mixing_dense", lambda: layers.Dense(128, activation="relu", name="mixing_dense")),
    ("mixing_dropout", lambda: layers.Dropout(0.3, name="mixing_dropout")),
)


def _mixing_branch(m, model: keras.Model | None = None):
    for name, make in _MIXING_LAYERS:
        m = (model.get_layer(name) if model is not None else make())(m)
    return m


def conv_part(model: keras.Model) -> keras.Model:
    """audio_features -> the conv stack's [B, T/4, 256] sequence (layers shared with `model`)."""
    return keras.Model(model.inputs[0], model.get_layer("to_sequence").output, name="technical_conv")


def head_part(model: keras.Model) -> keras.Model:
    """A [B, S, 256] conv sequence and the mixing features -> technical_scores, through `model`'s
    own layers."""
    seq = keras.Input(shape=(None, 256), dtype="float32", name="conv_sequence")
    mixing = keras.Input(shape=(None, _MIXING.dims[1]), dtype="float32", name=_MIXING.name)
    x = model.get_layer("lstm1")(seq)
    x = model.get_layer("dropout1")(x)
    x = model.get_layer("attention")(x, x)
    x = model.get_layer("lstm2")(x)
    x = model.get_layer("dropout2")(x)
    m = _mixing_branch(model.get_layer("mixing_norm")(mixing), model)
    x = model.get_layer("fusion_concat")([x, m])
    heads = [model.get_layer(label)(x) for label in _HEADS]
    out = model.get_layer(SPEC.outputs[0].name)(heads)
    return keras.Model([seq, mixing], out, name="technical_head")
