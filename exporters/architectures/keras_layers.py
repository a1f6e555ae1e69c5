"""Layers the Keras architectures share."""

from __future__ import annotations

from typing import Sequence

from keras import layers


def standardise(features: int, mean: Sequence[float] | None, variance: Sequence[float] | None) -> layers.Normalization:
    """Fixed per-feature standardisation of the mixing features (`mixing_norm`; a constant feature
    gets a small variance floor). Training passes the statistics of its data; they live in the layer's config, so the saved model and its ONNX graph
    carry them. None: identity (an untrained, seeded model)."""
    return layers.Normalization(
        axis=-1,
        mean=[0.0] * features if mean is None else [float(v) for v in mean],
        variance=[1.0] * features if variance is None else [float(v) + 1e-6 for v in variance],
        name="mixing_norm",
    )
