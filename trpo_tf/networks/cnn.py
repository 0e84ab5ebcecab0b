"""A convolutional torso for image observations (Nature DQN's stack by default).

::

    [batch, H·W·C] float32 --reshape--> [batch, H, W, C] --× scale--> Conv2D ... Conv2D
        --flatten--> Dense(hidden[0]) ... Dense(hidden[-1]) --> Dense(output_dim)

Training stores observations flattened (``[batch, observation_dim]`` float32, pixel
values 0–255 for a uint8 image), so the network restores the image shape first and
scales uint8 pixels to [0, 1] inside the graph: rollouts, the update and the exported
SavedModel all feed it the same numbers. Mnih et al. (2015) use three convolutions,
32 8×8 filters with stride 4, 64 4×4 with stride 2 and 64 3×3 with stride 1 (ReLU),
then a 512-unit layer: ``policy.hidden: [512]`` and ``policy.activation: relu`` with
the defaults below. That stack needs images of at least 36×36; small images take
smaller kernels and strides (``kernel_sizes: [3, 3], strides: [1, 2]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import keras
import numpy as np

from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import NetworkSpec
from trpo_tf.networks.mlp import DenseWithFeatures

CONV_ACTIVATIONS = ("relu", "elu", "gelu", "silu", "tanh")
PADDINGS = ("valid", "same")


def image_shape(space: Any) -> tuple[int, int, int] | None:
    """``(H, W, C)`` of an image Box (rank 3, or rank 2 read as one channel), else None."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
        return None
    shape = tuple(int(d) for d in space.shape)
    return (*shape, 1) if len(shape) == 2 else shape  # type: ignore[return-value]


def _int_list(name: str, value: Any, length: int | None) -> list[int]:
    """``value`` as ``length`` positive ints (an int repeats); ConfigError otherwise."""
    items = [value] * (length or 1) if isinstance(value, int | np.integer) else value
    if (
        not isinstance(items, Sequence)
        or isinstance(items, str)
        or not items
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in items)
        or min(items) < 1
    ):
        raise ConfigError(
            f"network 'cnn': {name} must be a positive int or a non-empty list of them, "
            f"got {value!r}"
        )
    if length is not None and len(items) != length:
        raise ConfigError(
            f"network 'cnn': {name} has {len(items)} entries but filters has {length}; "
            "give one per convolution (or one int for all)"
        )
    return [int(v) for v in items]


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output length of one convolution along an axis of ``size`` (Keras' rule)."""
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _scale_of(scale: Any, spec: NetworkSpec) -> float:
    if scale == "auto":
        space = spec.observation_space
        uint8 = isinstance(space, gym.spaces.Box) and np.dtype(space.dtype) == np.uint8
        return 1.0 / 255.0 if uint8 and not spec.normalized_observations else 1.0
    if (
        isinstance(scale, bool)
        or not isinstance(scale, int | float)
        or not np.isfinite(scale)
        or scale <= 0
    ):
        raise ConfigError(f"network 'cnn': scale must be 'auto' or a number > 0, got {scale!r}")
    return float(scale)


def make_cnn(
    spec: NetworkSpec,
    filters: Sequence[int] = (32, 64, 64),
    kernel_sizes: Sequence[int] | int = (8, 4, 3),
    strides: Sequence[int] | int = (4, 2, 1),
    conv_activation: str = "relu",
    padding: str = "valid",
    scale: float | str = "auto",
) -> keras.Sequential:
    """Entry point ``cnn``: convolutions over an image observation, then ``spec.hidden``.

    Args:
        spec: what to build; ``spec.observation_space`` must be an image Box
            ``(H, W, C)`` (or ``(H, W)``, one channel), channels last.
        filters: output channels of each convolution.
        kernel_sizes: square kernel size per convolution (one int: all).
        strides: stride per convolution (one int: all).
        conv_activation: the convolutions' activation.
        padding: ``valid`` (Nature DQN) or ``same``.
        scale: multiplies the pixels before the first convolution; ``auto`` is 1/255
            for a uint8 Box (unless ``env.normalize_obs`` standardizes it already) and 1
            otherwise.

    Returns:
        A built ``keras.Sequential`` ``[batch, H·W·C] -> [batch, spec.output_width]``.
        Convolutions and hidden layers use orthogonal initialization with gain √2 and
        zero biases, the output layer ``spec.output_gain``, as :func:`build_mlp` does.

    Raises:
        ConfigError: not an image observation space, malformed keywords, or a stack
            that shrinks the image to nothing (naming the layer and the sizes).
    """
    shape = image_shape(spec.observation_space)
    if shape is None:
        raise ConfigError(
            f"network 'cnn' needs an image observation space, a Box of shape (H, W, C) or "
            f"(H, W), got {spec.observation_space}; use the mlp network for this env"
        )
    filters = _int_list("filters", filters, None)
    kernels = _int_list("kernel_sizes", kernel_sizes, len(filters))
    strides = _int_list("strides", strides, len(filters))
    if conv_activation not in CONV_ACTIVATIONS:
        raise ConfigError(
            f"network 'cnn': conv_activation must be one of {', '.join(CONV_ACTIVATIONS)}, "
            f"got {conv_activation!r}"
        )
    if padding not in PADDINGS:
        raise ConfigError(f"network 'cnn': padding must be valid or same, got {padding!r}")
    factor = _scale_of(scale, spec)
    height, width, channels = shape
    for index, (kernel, stride) in enumerate(zip(kernels, strides, strict=True)):
        next_height = conv_output_size(height, kernel, stride, padding)
        next_width = conv_output_size(width, kernel, stride, padding)
        if next_height < 1 or next_width < 1:
            raise ConfigError(
                f"network 'cnn': convolution {index} (kernel {kernel}, stride {stride}) gets a "
                f"{height}x{width} input from the {shape[0]}x{shape[1]} observation and leaves "
                "nothing; use smaller kernel_sizes or strides, fewer convolutions, or padding: same"
            )
        height, width = next_height, next_width

    dtype = "float32"
    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(spec.observation_dim,), dtype=dtype),
        keras.layers.Reshape(shape, name="image"),
    ]
    if factor != 1.0:
        layers.append(keras.layers.Rescaling(factor, name="scale", dtype=dtype))
    for index, (count, kernel, stride) in enumerate(zip(filters, kernels, strides, strict=True)):
        layers.append(
            keras.layers.Conv2D(
                count,
                kernel,
                strides=stride,
                padding=padding,
                activation=conv_activation,
                kernel_initializer=keras.initializers.Orthogonal(
                    np.sqrt(2.0), seed=spec.seed + index
                ),
                bias_initializer="zeros",
                dtype=dtype,
                name=f"conv_{index}",
            )
        )
    layers.append(keras.layers.Flatten(name="flatten"))
    for index, units in enumerate(spec.hidden):
        layers.append(
            keras.layers.Dense(
                int(units),
                activation=spec.activation,
                kernel_initializer=keras.initializers.Orthogonal(
                    np.sqrt(2.0), seed=spec.seed + 100 + index
                ),
                bias_initializer="zeros",
                dtype=dtype,
                name=f"hidden_{index}",
            )
        )
    output_layer = DenseWithFeatures if spec.append_features else keras.layers.Dense
    layers.append(
        output_layer(
            int(spec.output_dim),
            kernel_initializer=keras.initializers.Orthogonal(
                spec.output_gain, seed=spec.seed + 1000
            ),
            bias_initializer="zeros",
            dtype=dtype,
            name="output",
        )
    )
    return keras.Sequential(layers, name=spec.name)
