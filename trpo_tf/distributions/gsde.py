"""Generalized state-dependent exploration (gSDE; Raffin et al., 2022) for ``Box`` actions.

The policy network ends in a :class:`~trpo_tf.networks.DenseWithFeatures` layer, so
it emits ``[μ(s), φ(s)]`` ``[batch, d + k]`` with φ the last hidden activations.
Exploration noise is linear in those features, ε(s) = φ(s)ᵀ Θ with
Θ_jd ~ N(0, σ_jd²) held fixed for ``resample_every`` steps (temporally coherent,
state-dependent). Given s, the action is Gaussian:

    π(a|s) = Π_d N(a_d; μ_d(s), σ_d(s)²),   σ_d(s)² = Σ_j φ_j(s)² σ_jd² + 1e-6,

which is what the trust region, the surrogate and the stored behavior log-probs use
(per step, as if Θ were redrawn every step). σ_jd = exp(L_jd) with L ``[k, d]`` a
trainable head variable; φ is stop-gradiented inside σ (the features are learned
through μ only). ``params = [μ, log σ(s)]`` ``[batch, 2d]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.distributions.diag_gaussian import BoxGaussianBase, check_float_box
from trpo_tf.errors import IncompatibleSpaceError

VARIANCE_FLOOR = 1e-6


class GsdeHead(BoxGaussianBase):
    """Gaussian head with state-dependent exploration over ``num_features`` features."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        num_features: int,
        log_std_init: float = 0.0,
        resample_every: int = 4,
        dtype: tf.DType = tf.float32,
        env_dtype: np.dtype | str = np.float32,
    ) -> None:
        super().__init__("gsde", low, high, env_shape, dtype, env_dtype)
        self.num_features = int(num_features)
        self.num_inputs = self.size + self.num_features
        self.resample_every = int(resample_every)
        self.log_std = tf.Variable(
            tf.fill([self.num_features, self.size], tf.cast(log_std_init, dtype)),
            name="log_std",
            trainable=True,
        )

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return (self.log_std,)

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, d + k]`` = ``[μ, φ]`` -> ``[batch, 2d]`` = ``[μ, log σ(s)]``."""
        mean, features = self._split(net_out)
        features = tf.stop_gradient(features)
        variance = tf.matmul(tf.square(features), tf.exp(2.0 * self.log_std)) + VARIANCE_FLOOR
        return tf.concat([mean, 0.5 * tf.math.log(variance)], axis=-1)

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {"policy_std": tf.reduce_mean(tf.exp(self._split(params)[1]))}

    def numpy_sampler(self) -> GsdeNumpySampler:
        """Numpy twin with the current σ_jd; draws Θ anew at its first call."""
        return GsdeNumpySampler(
            self.size, np.asarray(self.log_std.numpy(), np.float32), self.resample_every
        )


class GsdeNumpySampler:
    """a = μ(s) + φ(s)ᵀ Θ_env, one Θ ``[k, d]`` per env, redrawn every ``resample_every`` calls.

    The log-prob and params are those of the per-step Gaussian N(μ(s), σ(s)²) the
    learner uses. A new sampler (one per policy update) starts with fresh Θ.
    """

    def __init__(self, size: int, log_std: np.ndarray, resample_every: int) -> None:
        self.size = size
        self.std = np.exp(log_std)  # [k, d]
        self.variance = np.square(self.std)
        self.resample_every = resample_every
        self.log_norm = 0.5 * np.log(2.0 * np.pi) * size
        self._calls = 0
        self._theta: np.ndarray | None = None

    def sample(
        self, net_out: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, features = net_out[:, : self.size], net_out[:, self.size :]
        n = mean.shape[0]
        stale = self._calls % self.resample_every == 0
        if stale or self._theta is None or self._theta.shape[0] != n:
            noise = rng.standard_normal((n, *self.std.shape), dtype=np.float32)
            self._theta = noise * self.std
        self._calls += 1
        variance = np.square(features) @ self.variance + VARIANCE_FLOOR
        log_std = 0.5 * np.log(variance)
        exploration = np.matmul(features[:, None, :], self._theta)[:, 0, :]
        # The density is the per-step Gaussian; its standardized noise is ε = (a − μ)/σ.
        actions = (mean + exploration).astype(np.float32)
        log_prob = -0.5 * np.sum(np.square(actions - mean) / variance, axis=-1) - (
            np.sum(log_std, axis=-1) + self.log_norm
        )
        params = np.concatenate([mean, log_std], axis=-1).astype(np.float32)
        return actions, log_prob.astype(np.float32), params

    def mode(self, net_out: np.ndarray) -> np.ndarray:
        return net_out[:, : self.size]


def make_gsde(
    action_space: gym.Space,
    num_features: int = 64,
    log_std_init: float = 0.0,
    resample_every: int = 4,
    dtype: tf.DType = tf.float32,
) -> GsdeHead:
    """Entry point ``gsde``: ``num_features`` must equal ``policy.hidden[-1]``."""
    check_float_box("gsde", action_space, log_std_init=log_std_init)
    for key, value in (("num_features", num_features), ("resample_every", resample_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise IncompatibleSpaceError(
                f"policy.distribution_kwargs.{key} must be an integer >= 1, got {value!r}"
            )
    return GsdeHead(
        action_space.low,
        action_space.high,
        action_space.shape,
        num_features,
        float(log_std_init),
        resample_every,
        dtype,
        env_dtype=action_space.dtype,
    )
