"""Multi-layer perceptrons for the policy and the value function."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from trpo_tf.interfaces import NetworkSpec


class DenseWithFeatures(keras.layers.Dense):
    """A linear Dense layer that also passes its input on: ``x -> [x W + b, x]``.

    Output ``[batch, units + input_dim]``. As a policy's last layer it hands the
    last hidden features φ(s) to a distribution head that needs them (``gsde``).
    """

    def call(self, inputs):  # noqa: D102 - see the class docstring
        return keras.ops.concatenate([super().call(inputs), inputs], axis=-1)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return (*input_shape[:-1], self.units + input_shape[-1])


def build_mlp(
    input_dim: int,
    hidden: Sequence[int],
    output_dim: int,
    activation: str = "tanh",
    output_gain: float = 1.0,
    seed: int = 0,
    dtype: str = "float32",
    name: str = "mlp",
    append_features: bool = False,
) -> keras.Sequential:
    """An MLP ``[batch, input_dim] -> [batch, output_dim]``, built (weights exist).

    Hidden layers use orthogonal initialization with gain √2 and zero biases; the
    output layer uses ``output_gain`` (0.01 for policy heads keeps the initial
    policy close to uniform / zero-mean, 1.0 for values). With ``append_features``
    the output is ``[batch, output_dim + hidden[-1]]``: the last hidden activations
    follow the outputs (:class:`DenseWithFeatures`).
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
    output_layer = DenseWithFeatures if append_features else keras.layers.Dense
    layers.append(
        output_layer(
            int(output_dim),
            kernel_initializer=keras.initializers.Orthogonal(output_gain, seed=seed + 1000),
            bias_initializer="zeros",
            dtype=dtype,
            name="output",
        )
    )
    return keras.Sequential(layers, name=name)


def make_mlp(spec: NetworkSpec) -> keras.Sequential:
    """Entry point ``mlp`` (the default network): :func:`build_mlp` of the spec.

    The layers are ``policy.hidden`` / ``value.hidden`` with their ``activation``; it
    takes no keywords of its own. The flat observation is its input whatever the
    observation space's shape.
    """
    return build_mlp(
        spec.observation_dim,
        spec.hidden,
        spec.output_dim,
        activation=spec.activation,
        output_gain=spec.output_gain,
        seed=spec.seed,
        name=spec.name,
        append_features=spec.append_features,
    )
