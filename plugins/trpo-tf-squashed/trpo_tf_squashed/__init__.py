"""Tanh-squashed Gaussian policy with a state-dependent standard deviation.

For a Box with finite bounds the network emits ``[batch, 2d]``: a mean μ(s) and a
raw scale r(s). The log-std is squashed smoothly into ``[log_std_min, log_std_max]``
so that r = 0 gives ``log_std_init``:

    log σ(s) = lo + (hi − lo) · sigmoid(r(s) + b),   b = logit((log_std_init − lo) / (hi − lo))

``params = [μ(s), log σ(s)]`` ``[batch, 2d]``. The policy draws a latent
u ~ N(μ(s), σ(s)²) and acts with ``a = low + (high − low) · (tanh(u) + 1) / 2``.

What is stored, and why the KL is exact
---------------------------------------
The stored action (and every log-prob, KL and entropy this head reports) is the
*latent* u. Squashing is a fixed bijection f, so for the squashed policy
π(a|s) = N(u; μ, σ²) / |det ∂f/∂u| with a Jacobian that does not depend on θ:

* importance ratios are identical: π_θ(a|s) / β(a|s) = N_θ(u) / N_β(u);
* KL divergence is invariant under a bijection, so
  KL(π_p ‖ π_q) = KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) = Σ_i log(σ_q,i/σ_p,i)
  + (σ_p,i² + (μ_p,i − μ_q,i)²)/(2σ_q,i²) − 1/2, in closed form.

So the TRPO surrogate and trust region of the squashed policy are computed exactly,
and no log-prob is ever evaluated at atanh(±1) (the usual numerical hazard of
squashed policies). The **entropy** reported is that of the latent Gaussian; the
squashed action's entropy differs from it by E[Σ_i log|∂a_i/∂u_i|], which is not
computed (entropy is only logged). The deterministic action is f(μ(s)).
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

__all__ = ["SquashedGaussianHead", "make_squashed_gaussian"]


class SquashedGaussianHead(tf.Module):
    """DistributionHead: latent diagonal Gaussian, tanh-squashed onto the Box."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        env_shape: tuple[int, ...],
        env_dtype: Any = np.float32,
        log_std_init: float = -0.5,
        log_std_min: float = -5.0,
        log_std_max: float = 1.0,
        dtype: tf.DType = tf.float32,
    ) -> None:
        super().__init__(name="squashed_gaussian")
        size = int(np.prod(env_shape))
        self.num_inputs = 2 * size
        self.param_dim = 2 * size
        self.action_shape: tuple[int, ...] = (size,)
        self.action_dtype = dtype
        self.env_shape = tuple(env_shape)
        self.env_dtype = np.dtype(env_dtype)
        self.low = np.asarray(low, np.float64).reshape(-1)
        self.high = np.asarray(high, np.float64).reshape(-1)
        self.log_std_min = float(log_std_min)
        self.log_std_span = float(log_std_max) - float(log_std_min)
        fraction = (float(log_std_init) - self.log_std_min) / self.log_std_span
        self.log_std_bias = math.log(fraction / (1.0 - fraction))

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()  # the std comes from the network: nothing state-independent

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, 2d]`` -> ``[batch, 2d]`` = ``[μ, log σ]``."""
        size = self.action_shape[0]
        mean, raw_scale = net_out[..., :size], net_out[..., size:]
        log_std = self.log_std_min + self.log_std_span * tf.sigmoid(raw_scale + self.log_std_bias)
        return tf.concat([mean, log_std], axis=-1)

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """Latent N(μ, diag σ²): batch shape ``[batch]``, event ``[d]``."""
        size = self.action_shape[0]
        return tfd.MultivariateNormalDiag(
            loc=params[..., :size], scale_diag=tf.exp(params[..., size:])
        )

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """The latent mean μ ``[batch, d]`` (acts as f(μ))."""
        return params[..., : self.action_shape[0]]

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """Latent ``[n, d]`` -> ``low + (high − low)(tanh(u) + 1)/2`` ``[n, *shape]``."""
        latent = np.asarray(actions, np.float64)
        squashed = self.low + (self.high - self.low) * 0.5 * (np.tanh(latent) + 1.0)
        squashed = np.clip(squashed.astype(self.env_dtype), self.low, self.high)
        return squashed.astype(self.env_dtype).reshape((latent.shape[0], *self.env_shape))

    def to_env_action_graph(self, actions: tf.Tensor) -> tf.Tensor:
        """:meth:`to_env_action` as graph ops, for exported SavedModels."""
        latent = tf.cast(actions, tf.float64)
        low, high = tf.constant(self.low), tf.constant(self.high)
        squashed = low + (high - low) * 0.5 * (tf.tanh(latent) + 1.0)
        squashed = tf.cast(squashed, tf.as_dtype(self.env_dtype))
        squashed = tf.clip_by_value(
            squashed,
            tf.constant(self.low, squashed.dtype),
            tf.constant(self.high, squashed.dtype),
        )
        return tf.reshape(squashed, [-1, *self.env_shape])

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        """``policy_std``: mean latent σ over the batch."""
        return {"policy_std": tf.reduce_mean(tf.exp(params[..., self.action_shape[0] :]))}


def make_squashed_gaussian(
    action_space: gym.Space,
    log_std_init: float = -0.5,
    log_std_min: float = -5.0,
    log_std_max: float = 1.0,
    dtype: tf.DType = tf.float32,
) -> SquashedGaussianHead:
    """Entry point ``squashed_gaussian`` (``policy.distribution_kwargs``: the log-std range).

    Raises:
        IncompatibleSpaceError: not a float Box with finite bounds, or a bad log-std range.
    """
    if not isinstance(action_space, gym.spaces.Box) or not np.issubdtype(
        action_space.dtype, np.floating
    ):
        raise IncompatibleSpaceError(
            f"distribution 'squashed_gaussian' needs a float Box action space, got {action_space}"
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise IncompatibleSpaceError(
            f"distribution 'squashed_gaussian' needs finite Box bounds, got {action_space}"
        )
    bounds = (log_std_init, log_std_min, log_std_max)
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in bounds) or not (
        log_std_min < log_std_init < log_std_max
    ):
        raise IncompatibleSpaceError(
            "policy.distribution_kwargs: squashed_gaussian needs numbers with "
            f"log_std_min < log_std_init < log_std_max, got {bounds}"
        )
    return SquashedGaussianHead(
        action_space.low,
        action_space.high,
        action_space.shape,
        env_dtype=action_space.dtype,
        log_std_init=float(log_std_init),
        log_std_min=float(log_std_min),
        log_std_max=float(log_std_max),
        dtype=dtype,
    )
