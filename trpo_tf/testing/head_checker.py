"""What the distribution checks share: the head under test, failure messages, tolerances."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

# Monte-Carlo agreement: |estimate − exact| ≤ Z · standard error + slack.
Z_SCORE = 6.0


class HeadChecker:
    """Holds the head under test and formats failures."""

    def __init__(self, factory: Callable[..., Any], action_space: gym.Space) -> None:
        self.factory = factory
        self.action_space = action_space
        name = getattr(factory, "__qualname__", None) or repr(factory)
        self.context = f"check_distribution({name}, {action_space})"

    def fail(self, check: str, detail: str) -> None:
        raise AssertionError(f"{self.context}: {check}: {detail}")

    def expect(self, condition: Any, check: str, detail: str) -> None:
        if not condition:
            self.fail(check, detail)

    def expect_tensor(
        self, value: Any, check: str, shape: tuple[int, ...], dtype: tf.DType | None = None
    ) -> np.ndarray:
        """``value`` converts to a tensor of ``shape`` (and ``dtype``); returns numpy."""
        try:
            tensor = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as error:
            self.fail(check, f"returned {type(value).__name__}, not a tensor ({error})")
        self.expect(
            tuple(tensor.shape) == tuple(shape),
            check,
            f"shape {tuple(tensor.shape)}, expected {tuple(shape)}",
        )
        if dtype is not None:
            self.expect(
                tensor.dtype == dtype, check, f"dtype {tensor.dtype.name}, expected {dtype.name}"
            )
        return tensor.numpy()

    def expect_finite(self, array: np.ndarray, check: str) -> None:
        bad = ~np.isfinite(np.asarray(array, np.float64))
        self.expect(not bad.any(), check, f"{int(bad.sum())} non-finite value(s): {array}")


def float_dtype(head: Any, kwargs: Mapping[str, Any]) -> tf.DType:
    if "dtype" in kwargs:
        return tf.as_dtype(kwargs["dtype"])
    for variable in head.trainable_variables:
        return variable.dtype
    return tf.float32


def kl_tolerance(dtype: tf.DType) -> float:
    return 1e-10 if dtype == tf.float64 else 2e-5


def env_contains(space: gym.Space, row: Any) -> bool:
    """Whether ``env.step`` accepts ``row``: in the space, or a float Box row that
    casts to the space's dtype without changing kind (float64 for float32)."""
    if space.contains(row):
        return True
    if isinstance(space, gym.spaces.Box):
        row = np.asarray(row)
        return bool(
            row.shape == space.shape
            and np.can_cast(row.dtype, space.dtype, casting="same_kind")
            and space.contains(row.astype(space.dtype))
        )
    return False
