"""Categorical policy for ``Discrete`` action spaces.

Parameters are the logits: ``params = net_out``, ``[batch, n]``.
π(a|s) = softmax(logits)_a; KL(p‖q) = Σ_a p_a (log p_a − log q_a) (closed form in TFP).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.errors import IncompatibleSpaceError

tfd = tfp.distributions


class CategoricalHead(tf.Module):
    """Distribution head over ``n`` discrete actions ``start .. start + n − 1``."""

    def __init__(self, n: int, start: int = 0, dtype: tf.DType = tf.float32) -> None:
        super().__init__(name="categorical")
        self.num_inputs = int(n)
        self.param_dim = int(n)
        self.action_shape: tuple[int, ...] = ()
        self.action_dtype = tf.int32
        self.start = int(start)
        self.dtype = dtype

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, n]`` network output -> ``[batch, n]`` logits."""
        return net_out

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """Categorical with batch shape ``[batch]`` over ``n`` classes."""
        return tfd.Categorical(logits=params, dtype=tf.int32)

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """Most likely action, ``[batch]`` int32."""
        return tf.argmax(params, axis=-1, output_type=tf.int32)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return np.asarray(actions, dtype=np.int64) + self.start

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {}

    def numpy_sampler(self) -> CategoricalNumpySampler:
        """Numpy twin used by fast rollouts (see ``trpo_tf.rollout.numpy_actor``)."""
        return CategoricalNumpySampler()


class CategoricalNumpySampler:
    """Inverse-CDF sampling from logits ``[n, k]``; log π(a) = logits_a − logsumexp."""

    def sample(
        self, logits: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shifted = logits - logits.max(axis=-1, keepdims=True)
        weights = np.exp(shifted)
        cumulative = np.cumsum(weights, axis=-1)
        total = cumulative[:, -1]
        # First class whose cumulative weight exceeds u ~ U(0, total).
        threshold = rng.random(len(logits)) * total
        actions = np.minimum((cumulative <= threshold[:, None]).sum(axis=-1), logits.shape[-1] - 1)
        actions = actions.astype(np.int32)
        log_prob = shifted[np.arange(len(logits)), actions] - np.log(total)
        return actions, log_prob.astype(np.float32), logits

    def mode(self, logits: np.ndarray) -> np.ndarray:
        return np.argmax(logits, axis=-1).astype(np.int32)


def make_categorical(action_space: gym.Space, dtype: tf.DType = tf.float32) -> CategoricalHead:
    """Entry point ``categorical``: a :class:`CategoricalHead` for a Discrete space."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise IncompatibleSpaceError(
            f"distribution 'categorical' needs a Discrete action space, got {action_space}; "
            "set policy.distribution to 'auto' or to one that fits this space"
        )
    return CategoricalHead(int(action_space.n), int(action_space.start), dtype=dtype)
