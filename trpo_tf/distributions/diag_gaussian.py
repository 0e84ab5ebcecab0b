"""Diagonal Gaussian policy for ``Box`` action spaces.

The network outputs the mean μ(s) ``[batch, d]``; the log standard deviation is a
state-independent trainable vector ``log_std`` ``[d]`` that belongs to the policy
parameters θ (so the natural gradient and the trust region cover it).

``params = [μ(s), log_std]`` ``[batch, 2d]``;
π(a|s) = Π_i N(a_i; μ_i(s), exp(log_std_i)²);
KL(p‖q) = Σ_i log(σ_q,i/σ_p,i) + (σ_p,i² + (μ_p,i − μ_q,i)²) / (2 σ_q,i²) − 1/2.

Actions are sampled unbounded; the stored action (and its log-prob) is the raw
sample, and :meth:`DiagGaussianHead.to_env_action` clips it to the Box bounds.
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


class DiagGaussianHead(tf.Module):
    """Gaussian head with a state-independent, trainable log-std."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        log_std_init: float = 0.0,
        dtype: tf.DType = tf.float32,
        env_dtype: np.dtype | str = np.float32,
    ) -> None:
        super().__init__(name="diag_gaussian")
        size = int(np.prod(env_shape))
        self.num_inputs = size
        self.param_dim = 2 * size
        self.action_shape: tuple[int, ...] = (size,)
        self.action_dtype = dtype
        self.env_shape = tuple(env_shape)
        self.env_dtype = np.dtype(env_dtype)
        self.low = np.asarray(low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(high, dtype=np.float64).reshape(-1)
        self.log_std = tf.Variable(
            tf.fill([size], tf.cast(log_std_init, dtype)), name="log_std", trainable=True
        )

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return (self.log_std,)

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, d]`` means -> ``[batch, 2d]`` = ``[mean, log_std]``."""
        log_std = tf.broadcast_to(self.log_std, tf.shape(net_out))
        return tf.concat([net_out, log_std], axis=-1)

    def _split(self, params: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return params[..., : self.num_inputs], params[..., self.num_inputs :]

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """Independent Normals with batch shape ``[batch]``, event ``[d]``.

        (Equal to ``MultivariateNormalDiag``; its linear-operator machinery made
        tracing the update ~2× slower.)
        """
        mean, log_std = self._split(params)
        return tfd.Independent(
            tfd.Normal(loc=mean, scale=tf.exp(log_std)), reinterpreted_batch_ndims=1
        )

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """The mean, ``[batch, d]``."""
        return self._split(params)[0]

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        clipped = np.clip(actions, self.low, self.high).astype(self.env_dtype, copy=False)
        return clipped.reshape((actions.shape[0], *self.env_shape))

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {"policy_std": tf.reduce_mean(tf.exp(self.log_std))}

    def numpy_sampler(self) -> DiagGaussianNumpySampler:
        """Numpy twin (with the current log-std) used by fast rollouts."""
        return DiagGaussianNumpySampler(np.asarray(self.log_std.numpy(), np.float32))


class DiagGaussianNumpySampler:
    """a = μ + σ·ε; log π(a) = Σ_i −½ε_i² − log σ_i − ½ log 2π."""

    def __init__(self, log_std: np.ndarray) -> None:
        self.log_std = log_std
        self.std = np.exp(log_std)
        self.log_norm = float(np.sum(log_std) + 0.5 * np.log(2.0 * np.pi) * log_std.size)

    def sample(
        self, mean: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        noise = rng.standard_normal(mean.shape, dtype=np.float32)
        actions = mean + self.std * noise
        log_prob = -0.5 * np.sum(noise * noise, axis=-1) - self.log_norm
        params = np.concatenate([mean, np.broadcast_to(self.log_std, mean.shape)], axis=-1)
        return actions.astype(np.float32), log_prob.astype(np.float32), params

    def mode(self, mean: np.ndarray) -> np.ndarray:
        return mean


def make_diag_gaussian(
    action_space: gym.Space, log_std_init: float = 0.0, dtype: tf.DType = tf.float32
) -> DiagGaussianHead:
    """Entry point ``diag_gaussian``: a :class:`DiagGaussianHead` for a float Box."""
    if not isinstance(action_space, gym.spaces.Box) or not np.issubdtype(
        action_space.dtype, np.floating
    ):
        raise IncompatibleSpaceError(
            f"distribution 'diag_gaussian' needs a float Box action space, got {action_space}; "
            "set policy.distribution to 'auto' or to one that fits this space"
        )
    if not isinstance(log_std_init, int | float) or isinstance(log_std_init, bool):
        raise IncompatibleSpaceError(
            f"policy.distribution_kwargs.log_std_init must be a number, got {log_std_init!r}"
        )
    return DiagGaussianHead(
        action_space.low,
        action_space.high,
        action_space.shape,
        float(log_std_init),
        dtype,
        env_dtype=action_space.dtype,
    )
