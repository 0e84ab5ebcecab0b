"""Independent Bernoullis for ``MultiBinary`` action spaces.

The network emits one logit per binary component, ``params = net_out``
``[batch, d]`` with ``d = prod(space.shape)``.

π(a|s) = Π_i σ(l_i)^{a_i} σ(−l_i)^{1−a_i};  log π(a|s) = −Σ_i softplus((1 − 2a_i) l_i);
KL(p‖q) = Σ_i [σ(l_p,i)(log σ(l_p,i) − log σ(l_q,i)) + σ(−l_p,i)(log σ(−l_p,i) − log σ(−l_q,i))]
(closed form in TFP, summed by ``tfd.Independent``).
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


class BernoulliHead(tf.Module):
    """Distribution head over ``d`` independent {0, 1} components.

    Args:
        env_shape: the MultiBinary space's shape (flattened to ``d`` components).
        env_dtype: numpy dtype of the space's actions (``int8`` for MultiBinary).
        dtype: float dtype of the logits.
    """

    def __init__(
        self, env_shape: tuple[int, ...], env_dtype: Any = np.int8, dtype: tf.DType = tf.float32
    ) -> None:
        super().__init__(name="bernoulli")
        size = int(np.prod(env_shape))
        self.env_shape = tuple(int(n) for n in env_shape)
        self.env_dtype = np.dtype(env_dtype)
        self.num_inputs = size
        self.param_dim = size
        self.action_shape: tuple[int, ...] = (size,)
        self.action_dtype = tf.int32
        self.dtype = dtype

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, d]`` network output -> ``[batch, d]`` logits."""
        return net_out

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """``Independent(Bernoulli)``: batch shape ``[batch]``, event ``[d]`` int32."""
        return tfd.Independent(tfd.Bernoulli(logits=params, dtype=tf.int32), 1)

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """1 where the logit is positive, ``[batch, d]`` int32."""
        return tf.cast(params > 0, tf.int32)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """``[n, d]`` {0, 1} -> ``[n, *space.shape]`` in the space's dtype."""
        actions = np.asarray(actions)
        return actions.reshape((actions.shape[0], *self.env_shape)).astype(self.env_dtype)

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {}

    def numpy_sampler(self) -> BernoulliNumpySampler:
        """Numpy twin used by fast rollouts (see ``trpo_tf.rollout.numpy_actor``)."""
        return BernoulliNumpySampler()


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class BernoulliNumpySampler:
    """a_i = [u_i < σ(l_i)];  log π(a) = −Σ_i softplus((1 − 2a_i) l_i)."""

    def sample(
        self, logits: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits64 = logits.astype(np.float64)
        probs = 1.0 / (1.0 + np.exp(-logits64))
        actions = (rng.uniform(size=logits.shape) < probs).astype(np.int32)
        log_prob = -np.sum(_softplus((1.0 - 2.0 * actions) * logits64), axis=-1)
        return actions, log_prob.astype(np.float32), logits

    def mode(self, logits: np.ndarray) -> np.ndarray:
        return (logits > 0).astype(np.int32)


def make_bernoulli(action_space: gym.Space, dtype: tf.DType = tf.float32) -> BernoulliHead:
    """Entry point ``bernoulli``: a :class:`BernoulliHead` for a MultiBinary space."""
    if not isinstance(action_space, gym.spaces.MultiBinary):
        raise IncompatibleSpaceError(
            f"distribution 'bernoulli' needs a MultiBinary action space, got {action_space}; "
            "set policy.distribution to 'auto' or to one that fits this space"
        )
    return BernoulliHead(tuple(action_space.shape), env_dtype=action_space.dtype, dtype=dtype)
