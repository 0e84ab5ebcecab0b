"""Multi-layer perceptrons for the policy and the value function."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def build_mlp(
    input_dim: int,
    hidden: Sequence[int],
    output_dim: int,
    activation: str = "tanh",
    output_gain: float = 1.0,
    seed: int = 0,
    dtype: str = "float32",
    name: str = "mlp",
) -> keras.Sequential:
    """An MLP ``[batch, input_dim] -> [batch, output_dim]``, built (weights exist).

    Hidden layers use orthogonal initialization with gain √2 and zero biases; the
    output layer uses ``output_gain`` (0.01 for policy heads keeps the initial
    policy close to uniform / zero-mean, 1.0 for values).
    """
    layers: list[keras.layers.Layer] = [keras.Input(shape=(input_dim,), dtype=dtype)]
    for index, width in enumerate(hidden):
        layers.append(
            keras.layers.Dense(
                int(width),
                activation=activation,
                kernel_initializer=keras.initializers.Orthogonal(np.sqrt(2.0), seed=seed + index),
                bias_initializer="zeros",
                dtype=dtype,
                name=f"hidden_{index}",
            )
        )
    layers.append(
        keras.layers.Dense(
            int(output_dim),
            kernel_initializer=keras.initializers.Orthogonal(output_gain, seed=seed + 1000),
            bias_initializer="zeros",
            dtype=dtype,
            name="output",
        )
    )
    return keras.Sequential(layers, name=name)
