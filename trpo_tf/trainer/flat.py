"""Flat views of a list of variables: θ as one vector ``[n_params]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf


def flatten(tensors: Sequence[Any]) -> tf.Tensor:
    """Concatenate tensors (any shapes) into one vector ``[Σ sizes]``."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """aᵀb for vectors ``[n]``: two ops (``tf.tensordot`` traces ~8 for the reshapes)."""
    return tf.reduce_sum(a * b)


def flat_gradient(gradients: Sequence[Any], variables: Sequence[Any]) -> tf.Tensor:
    """Flatten gradients, treating ``None`` (variable not used) as zeros."""
    return flatten(
        [
            tf.zeros(v.shape, v.dtype) if g is None else g
            for g, v in zip(gradients, variables, strict=True)
        ]
    )


def get_flat(variables: Sequence[Any]) -> tf.Tensor:
    """θ ``[n_params]`` read from ``variables``."""
    return flatten([tf.convert_to_tensor(v) for v in variables])


def assign_flat(variables: Sequence[Any], flat: tf.Tensor) -> list[Any]:
    """Write ``flat`` ``[n_params]`` back into ``variables`` (exact, no arithmetic)."""
    sizes = [_size(v) for v in variables]
    pieces = tf.split(flat, sizes)
    return [v.assign(tf.reshape(p, v.shape)) for v, p in zip(variables, pieces, strict=True)]


def _size(variable: Any) -> int:
    size = 1
    for dim in variable.shape:
        size *= int(dim)
    return size


def num_params(variables: Sequence[Any]) -> int:
    """Total number of scalars in ``variables``."""
    return sum(_size(v) for v in variables)
