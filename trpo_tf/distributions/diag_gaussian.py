"""Diagonal Gaussian policy for ``Box`` action spaces.

The network outputs the mean μ(s) ``[batch, d]``; the log standard deviation is a
state-independent trainable vector ``log_std`` ``[d]`` that belongs to the policy
parameters θ (so the natural gradient and the trust region cover it).

``params = [μ(s), log_std]`` ``[batch, 2d]``;
π(a|s) = Π_i N(a_i; μ_i(s), exp(log_std_i)²);
KL(p‖q) = Σ_i log(σ_q,i/σ_p,i) + (σ_p,i² + (μ_p,i − μ_q,i)²) / (2 σ_q,i²) − 1/2.

Actions are sampled unbounded; the stored action (and its log-prob) is the raw
sample, and :meth:`DiagGaussianHead.to_env_action` clips it to the Box bounds.

:class:`StateStdGaussianHead` (entry point ``gaussian_state_std``) is the same
Gaussian with a state-dependent log-std: the network emits ``[μ(s), ℓ(s)]`` ``[batch, 2d]``
and log σ(s) = clip(log_std_init + ℓ(s), log_std_min, log_std_max), so exploration can
stay wide where the policy is unsure and narrow where it is precise.
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


class BoxGaussianBase(tf.Module):
    """What both Gaussian heads share: ``params = [mean, log_std]`` ``[batch, 2d]``."""

    def __init__(
        self,
        name: str,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        dtype: tf.DType,
        env_dtype: np.dtype | str,
    ) -> None:
        super().__init__(name=name)
        self.size = int(np.prod(env_shape))
        self.param_dim = 2 * self.size
        self.action_shape: tuple[int, ...] = (self.size,)
        self.action_dtype = dtype
        self.env_shape = tuple(env_shape)
        self.env_dtype = np.dtype(env_dtype)
        self.low = np.asarray(low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(high, dtype=np.float64).reshape(-1)

    def _split(self, params: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mean, rest = tf.split(params, [self.size, -1], axis=-1)  # one op; slicing traces ~8
        return mean, rest

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


class DiagGaussianHead(BoxGaussianBase):
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
        super().__init__("diag_gaussian", low, high, env_shape, dtype, env_dtype)
        self.num_inputs = self.size
        self.log_std = tf.Variable(
            tf.fill([self.size], tf.cast(log_std_init, dtype)), name="log_std", trainable=True
        )

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return (self.log_std,)

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, d]`` means -> ``[batch, 2d]`` = ``[mean, log_std]``."""
        log_std = tf.broadcast_to(self.log_std, tf.shape(net_out))
        return tf.concat([net_out, log_std], axis=-1)

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        """``policy_std``: mean σ of the distribution ``params`` describe (not of the
        current ``log_std``, which the policy step may have moved since)."""
        return {"policy_std": tf.reduce_mean(tf.exp(self._split(params)[1]))}

    def numpy_sampler(self) -> DiagGaussianNumpySampler:
        """Numpy twin (with the current log-std) used by fast rollouts."""
        return DiagGaussianNumpySampler(np.asarray(self.log_std.numpy(), np.float32))


class StateStdGaussianHead(BoxGaussianBase):
    """Gaussian head whose log-std comes from the network: ``[μ(s), ℓ(s)]`` ``[batch, 2d]``.

    log σ(s) = clip(log_std_init + ℓ(s), log_std_min, log_std_max); the policy
    network's small output gain makes every state start near ``log_std_init``.
    The head has no variables of its own.
    """

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        log_std_init: float = 0.0,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        dtype: tf.DType = tf.float32,
        env_dtype: np.dtype | str = np.float32,
    ) -> None:
        super().__init__("gaussian_state_std", low, high, env_shape, dtype, env_dtype)
        self.num_inputs = 2 * self.size
        self.log_std_init = float(log_std_init)
        self.log_std_bounds = (float(log_std_min), float(log_std_max))

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, 2d]`` = ``[μ, ℓ]`` -> ``[batch, 2d]`` = ``[μ, log σ]``."""
        mean, offset = self._split(net_out)
        low, high = self.log_std_bounds
        log_std = tf.clip_by_value(offset + self.log_std_init, low, high)
        return tf.concat([mean, log_std], axis=-1)

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {"policy_std": tf.reduce_mean(tf.exp(self._split(params)[1]))}

    def numpy_sampler(self) -> StateStdGaussianNumpySampler:
        """Numpy twin used by fast rollouts (the head has no state to copy)."""
        return StateStdGaussianNumpySampler(self.size, self.log_std_init, self.log_std_bounds)


def gaussian_sample(
    mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a = μ + σ·ε; log π(a) = Σ_i −½ε_i² − log σ_i − ½ log 2π; params ``[μ, log σ]``.

    ``mean`` ``[n, d]``; ``log_std`` ``[n, d]`` or ``[d]``.
    """
    log_std = np.broadcast_to(log_std, mean.shape)
    noise = rng.standard_normal(mean.shape, dtype=np.float32)
    actions = mean + np.exp(log_std) * noise
    log_prob = -0.5 * np.sum(noise * noise, axis=-1) - (
        np.sum(log_std, axis=-1) + 0.5 * np.log(2.0 * np.pi) * mean.shape[-1]
    )
    params = np.concatenate([mean, log_std], axis=-1)
    return actions.astype(np.float32), log_prob.astype(np.float32), params


class StateStdGaussianNumpySampler:
    """:func:`gaussian_sample` with log σ(s) = clip(init + ℓ(s)) from ``net_out = [μ, ℓ]``."""

    def __init__(self, size: int, log_std_init: float, bounds: tuple[float, float]) -> None:
        self.size, self.log_std_init, self.bounds = size, log_std_init, bounds

    def _split(self, net_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, offset = net_out[:, : self.size], net_out[:, self.size :]
        return mean, np.clip(offset + np.float32(self.log_std_init), *self.bounds)

    def sample(
        self, net_out: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, log_std = self._split(net_out)
        return gaussian_sample(mean, log_std.astype(np.float32), rng)

    def mode(self, net_out: np.ndarray) -> np.ndarray:
        return net_out[:, : self.size]


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
        log_prob = -0.5 * np.add.reduce(noise * noise, axis=-1) - self.log_norm
        # [μ, log σ] written into one array (this runs every env step; broadcasting and
        # concatenating cost ~5 µs more).
        size = mean.shape[-1]
        params = np.empty((*mean.shape[:-1], 2 * size), np.result_type(mean, self.log_std))
        params[..., :size] = mean
        params[..., size:] = self.log_std
        return (
            actions.astype(np.float32, copy=False),
            log_prob.astype(np.float32, copy=False),
            params,
        )

    def mode(self, mean: np.ndarray) -> np.ndarray:
        return mean


def check_float_box(name: str, action_space: gym.Space, **numbers: Any) -> None:
    if not isinstance(action_space, gym.spaces.Box) or not np.issubdtype(
        action_space.dtype, np.floating
    ):
        raise IncompatibleSpaceError(
            f"distribution '{name}' needs a float Box action space, got {action_space}; "
            "set policy.distribution to 'auto' or to one that fits this space"
        )
    for key, value in numbers.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise IncompatibleSpaceError(
                f"policy.distribution_kwargs.{key} must be a number, got {value!r}"
            )


def make_diag_gaussian(
    action_space: gym.Space, log_std_init: float = 0.0, dtype: tf.DType = tf.float32
) -> DiagGaussianHead:
    """Entry point ``diag_gaussian``: a :class:`DiagGaussianHead` for a float Box."""
    check_float_box("diag_gaussian", action_space, log_std_init=log_std_init)
    return DiagGaussianHead(
        action_space.low,
        action_space.high,
        action_space.shape,
        float(log_std_init),
        dtype,
        env_dtype=action_space.dtype,
    )


def make_state_std_gaussian(
    action_space: gym.Space,
    log_std_init: float = 0.0,
    log_std_min: float = -5.0,
    log_std_max: float = 2.0,
    dtype: tf.DType = tf.float32,
) -> StateStdGaussianHead:
    """Entry point ``gaussian_state_std``: a :class:`StateStdGaussianHead` for a float Box."""
    check_float_box(
        "gaussian_state_std",
        action_space,
        log_std_init=log_std_init,
        log_std_min=log_std_min,
        log_std_max=log_std_max,
    )
    if not log_std_min <= log_std_init <= log_std_max:
        raise IncompatibleSpaceError(
            "policy.distribution_kwargs: need log_std_min <= log_std_init <= log_std_max, got "
            f"{log_std_min} / {log_std_init} / {log_std_max}"
        )
    return StateStdGaussianHead(
        action_space.low,
        action_space.high,
        action_space.shape,
        float(log_std_init),
        float(log_std_min),
        float(log_std_max),
        dtype,
        env_dtype=action_space.dtype,
    )
