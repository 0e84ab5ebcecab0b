"""Beta policy for bounded ``Box`` action spaces (Chou et al., 2017).

Each action component is an independent Beta variable on ``[0, 1]`` mapped affinely
onto the Box: ``a_i = low_i + (high_i − low_i) · u_i``, ``u_i ~ Beta(α_i(s), β_i(s))``.
Unlike a Gaussian, every sample is a valid action, so nothing is clipped and the
policy has no probability mass outside the bounds.

The network emits ``[batch, 2d]``; ``α = softplus(net[:, :d]) + 1`` and
``β = softplus(net[:, d:]) + 1`` keep the density unimodal and zero at the bounds.
``params = [α, β]`` ``[batch, 2d]``.

The distribution is over *env-space* actions ``a`` (what the rollout stores), so its
log-density includes the constant Jacobian of the affine map:

    log π(a|s) = Σ_i [log Beta(u_i; α_i, β_i) − log(high_i − low_i)],  u = (a − low)/(high − low)

The Jacobian term is the same for every policy, so it cancels in importance ratios
and KLs: KL(p‖q) = Σ_i KL(Beta(α_p,i, β_p,i) ‖ Beta(α_q,i, β_q,i)), TFP's closed form

    KL = log B(α_q, β_q) − log B(α_p, β_p) + (α_p − α_q) ψ(α_p) + (β_p − β_q) ψ(β_p)
         + (α_q − α_p + β_q − β_p) ψ(α_p + β_p).

The entropy likewise gains Σ_i log(high_i − low_i).

In floating point a Beta sample can round to exactly 0 or 1, where the density
(α, β > 1) is zero and the log-prob −∞; samples are therefore kept at least
``1e-6`` (float32; ``1e-12`` in float64) of the range inside the bounds. The mass cut
off is below 1e-6 and the log-prob is evaluated at the stored (moved) sample, so
behavior and learner log-probs agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.errors import IncompatibleSpaceError

tfd = tfp.distributions
tfb = tfp.bijectors


def _margin(dtype: tf.DType) -> float:
    return 1e-12 if dtype == tf.float64 else 1e-6


class InteriorBeta(tfd.Beta):
    """``tfd.Beta`` with two changes for training.

    * Samples lie in ``[margin, 1 − margin]`` (see the module docstring).
    * log B(α, β) = lgamma(α) + lgamma(β) − lgamma(α + β) is computed in float64
      instead of with ``tfp.math.lbeta``. That function is a module-level
      ``tf.function``; calling it both from the XLA-compiled update and from an
      ordinary ``tf.function`` (the learner's log-probs) made XLA recompile the
      update on every call. float64 keeps the lgamma difference accurate for large
      concentrations; gradients (digamma) are the same as ``lbeta``'s.
    """

    def _sample_n(self, n, seed=None):
        margin = _margin(self.dtype)
        return tf.clip_by_value(super()._sample_n(n, seed=seed), margin, 1.0 - margin)

    def _log_normalization(self, concentration1, concentration0):
        alpha = tf.cast(concentration1, tf.float64)
        beta = tf.cast(concentration0, tf.float64)
        log_beta = tf.math.lgamma(alpha) + tf.math.lgamma(beta) - tf.math.lgamma(alpha + beta)
        return tf.cast(log_beta, self.dtype)


class BetaHead(tf.Module):
    """Distribution head with state-dependent Beta concentrations on a finite Box.

    Args:
        low, high: finite Box bounds (any shape; flattened to ``d`` components).
        env_shape: the Box shape, restored by :meth:`to_env_action`.
        env_dtype: numpy dtype of the Box.
        dtype: float dtype of parameters and actions.
    """

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        env_dtype: Any = np.float32,
        dtype: tf.DType = tf.float32,
    ) -> None:
        super().__init__(name="beta")
        size = int(np.prod(env_shape))
        self.num_inputs = 2 * size
        self.param_dim = 2 * size
        self.action_shape: tuple[int, ...] = (size,)
        self.action_dtype = dtype
        self.env_shape = tuple(env_shape)
        self.env_dtype = np.dtype(env_dtype)
        self.low = np.asarray(low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(high, dtype=np.float64).reshape(-1)
        self.dtype = dtype
        numpy_dtype = dtype.as_numpy_dtype
        self._to_action_space = tfb.Chain(
            [tfb.Shift(self.low.astype(numpy_dtype)), tfb.Scale(self.width.astype(numpy_dtype))]
        )

    @property
    def width(self) -> np.ndarray:
        """``high − low`` ``[d]`` float64."""
        return self.high - self.low

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, 2d]`` network output -> ``[batch, 2d]`` = ``[α, β]``, both > 1."""
        return tf.math.softplus(net_out) + tf.constant(1.0, net_out.dtype)

    def _split(self, params: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        size = self.action_shape[0]
        return params[..., :size], params[..., size:]

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """Affinely mapped ``Independent(Beta)``: batch ``[batch]``, event ``[d]``."""
        alpha, beta = self._split(params)
        unit = tfd.Independent(InteriorBeta(alpha, beta), reinterpreted_batch_ndims=1)
        return tfd.TransformedDistribution(unit, self._to_action_space)

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """``low + width · (α − 1)/(α + β − 2)`` ``[batch, d]`` (the centre when α = β = 1)."""
        alpha, beta = self._split(params)
        spread = alpha + beta - 2.0
        tiny = tf.constant(_margin(params.dtype), params.dtype)
        unit = tf.where(spread > tiny, (alpha - 1.0) / tf.maximum(spread, tiny), 0.5)
        return self._to_action_space.forward(unit)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """``[n, d]`` -> ``[n, *shape]`` in the Box dtype (clipped only against round-off)."""
        actions = np.asarray(actions)
        inside = np.clip(actions, self.low, self.high).astype(self.env_dtype)
        # Rounding to a narrower dtype can step just outside a bound; clip again there.
        low, high = self.low.astype(self.env_dtype), self.high.astype(self.env_dtype)
        inside = np.clip(inside, low, high)
        return inside.reshape((actions.shape[0], *self.env_shape))

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        """``policy_std``: mean standard deviation of the env-space action."""
        alpha, beta = self._split(params)
        total = alpha + beta
        unit_std = tf.sqrt(alpha * beta / (total * total * (total + 1.0)))
        width = tf.constant(self.width, params.dtype)
        return {"policy_std": tf.reduce_mean(unit_std * width)}

    def numpy_sampler(self) -> BetaNumpySampler:
        """Numpy twin used by fast rollouts (see ``trpo_tf.rollout.numpy_actor``)."""
        return BetaNumpySampler(self.low, self.width, self.dtype.as_numpy_dtype)


_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


class BetaNumpySampler:
    """u ~ Beta(α, β) (kept inside the margin); a = low + width·u; log-prob as above."""

    def __init__(self, low: np.ndarray, width: np.ndarray, dtype: Any) -> None:
        self.low = low
        self.width = width
        self.dtype = np.dtype(dtype)
        self.margin = 1e-12 if self.dtype == np.float64 else 1e-6
        self.log_jacobian = float(np.sum(np.log(width)))

    def _params(self, net_out: np.ndarray) -> np.ndarray:
        return np.logaddexp(0.0, net_out.astype(np.float64)) + 1.0

    def sample(
        self, net_out: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        params = self._params(net_out)
        alpha, beta = np.split(params, 2, axis=-1)
        unit = np.clip(rng.beta(alpha, beta), self.margin, 1.0 - self.margin)
        actions = (self.low + self.width * unit).astype(self.dtype)
        # Evaluate the density at the stored (rounded) action, as the learner will.
        unit = (actions.astype(np.float64) - self.low) / self.width
        log_beta = _lgamma(alpha) + _lgamma(beta) - _lgamma(alpha + beta)
        log_density = (alpha - 1.0) * np.log(unit) + (beta - 1.0) * np.log1p(-unit) - log_beta
        log_prob = np.sum(log_density, axis=-1) - self.log_jacobian
        return actions, log_prob.astype(np.float32), params.astype(self.dtype)

    def mode(self, net_out: np.ndarray) -> np.ndarray:
        alpha, beta = np.split(self._params(net_out), 2, axis=-1)
        spread = alpha + beta - 2.0
        unit = np.where(spread > self.margin, (alpha - 1.0) / np.maximum(spread, self.margin), 0.5)
        return (self.low + self.width * unit).astype(self.dtype)


def make_beta(action_space: gym.Space, dtype: tf.DType = tf.float32) -> BetaHead:
    """Entry point ``beta``: a :class:`BetaHead` for a float Box with finite bounds."""
    if not isinstance(action_space, gym.spaces.Box) or not np.issubdtype(
        action_space.dtype, np.floating
    ):
        raise IncompatibleSpaceError(
            f"distribution 'beta' needs a float Box action space, got {action_space}; "
            "set policy.distribution to 'auto' or to one that fits this space"
        )
    low = np.asarray(action_space.low, np.float64)
    high = np.asarray(action_space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise IncompatibleSpaceError(
            f"distribution 'beta' needs finite bounds with high > low, got {action_space}; "
            "use 'diag_gaussian' for unbounded actions"
        )
    return BetaHead(low, high, action_space.shape, env_dtype=action_space.dtype, dtype=dtype)
