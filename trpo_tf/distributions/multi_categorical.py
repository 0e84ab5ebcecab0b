"""Independent categoricals for ``MultiDiscrete`` action spaces.

A ``MultiDiscrete(nvec, start=start)`` space has ``k = nvec.size`` components;
component ``i`` takes values ``start_i .. start_i + n_i − 1``. The network emits the
concatenated logits of all components, ``params = net_out`` ``[batch, Σ_i n_i]``.

π(a|s) = Π_i softmax(logits_i)_{a_i};  log π(a|s) = Σ_i log softmax(logits_i)_{a_i};
KL(p‖q) = Σ_i KL(p_i‖q_i) (closed-form categorical KLs, summed by ``tfd.Independent``).

Components of different sizes are padded to ``max_i n_i`` classes with a logit of
``−1e9``: its probability is exactly 0 in float32 and float64, so log-probs, KLs and
entropies equal those of the unpadded categoricals while everything stays one
vectorized ``[batch, k, max_n]`` tensor.
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

_PAD_LOGIT = -1.0e9


def _padding_index(nvec: np.ndarray) -> np.ndarray:
    """``[k, max_n]`` indices into ``[logits..., pad]``; padded slots point at the pad."""
    total, width = int(nvec.sum()), int(nvec.max())
    index = np.full((nvec.size, width), total, dtype=np.int32)
    offset = 0
    for component, n in enumerate(nvec):
        index[component, :n] = np.arange(offset, offset + n)
        offset += int(n)
    return index


class MultiCategoricalHead(tf.Module):
    """Distribution head over ``k`` independent discrete components.

    Args:
        nvec: classes per component; any shape, flattened (the env shape is kept
            for :meth:`to_env_action`).
        start: lowest value of each component, same shape as ``nvec``.
        env_dtype: numpy dtype of the space's actions.
        dtype: float dtype of the logits.
    """

    def __init__(
        self,
        nvec: np.ndarray,
        start: np.ndarray | None = None,
        env_dtype: Any = np.int64,
        dtype: tf.DType = tf.float32,
    ) -> None:
        super().__init__(name="multi_categorical")
        nvec = np.asarray(nvec, dtype=np.int64)
        self.env_shape = tuple(nvec.shape)
        self.nvec = nvec.reshape(-1)
        self.start = (
            np.zeros_like(self.nvec) if start is None else np.asarray(start, np.int64).reshape(-1)
        )
        self.env_dtype = np.dtype(env_dtype)
        self.num_inputs = int(self.nvec.sum())
        self.param_dim = self.num_inputs
        self.action_shape: tuple[int, ...] = (int(self.nvec.size),)
        self.action_dtype = tf.int32
        self.dtype = dtype
        self._uniform = bool(np.all(self.nvec == self.nvec[0]))
        self._index = _padding_index(self.nvec)

    @property
    def trainable_variables(self) -> tuple[Any, ...]:
        return ()

    def params(self, net_out: tf.Tensor) -> tf.Tensor:
        """``[batch, Σn]`` network output -> ``[batch, Σn]`` concatenated logits."""
        return net_out

    def component_logits(self, params: tf.Tensor) -> tf.Tensor:
        """``[batch, Σn]`` -> ``[batch, k, max_n]`` logits, padded with ``−1e9``."""
        if self._uniform:
            return tf.reshape(params, [-1, int(self.nvec.size), int(self.nvec[0])])
        pad = tf.fill([tf.shape(params)[0], 1], tf.constant(_PAD_LOGIT, params.dtype))
        return tf.gather(tf.concat([params, pad], axis=-1), self._index, axis=-1)

    def distribution(self, params: tf.Tensor) -> tfd.Distribution:
        """``Independent(Categorical)``: batch shape ``[batch]``, event ``[k]`` int32."""
        categorical = tfd.Categorical(logits=self.component_logits(params), dtype=tf.int32)
        return tfd.Independent(categorical, reinterpreted_batch_ndims=1)

    def mode(self, params: tf.Tensor) -> tf.Tensor:
        """Most likely value of each component, ``[batch, k]`` int32."""
        return tf.argmax(self.component_logits(params), axis=-1, output_type=tf.int32)

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        """``[n, k]`` class indices -> ``[n, *nvec.shape]`` values (index + start)."""
        actions = np.asarray(actions, dtype=np.int64) + self.start
        return actions.reshape((actions.shape[0], *self.env_shape)).astype(self.env_dtype)

    def diagnostics(self, params: tf.Tensor) -> Mapping[str, tf.Tensor]:
        return {}

    def numpy_sampler(self) -> MultiCategoricalNumpySampler:
        """Numpy twin used by fast rollouts (see ``trpo_tf.rollout.numpy_actor``)."""
        return MultiCategoricalNumpySampler(self._index, self.num_inputs)


class MultiCategoricalNumpySampler:
    """Gumbel-max per component on the padded ``[n, k, max_n]`` logits."""

    def __init__(self, index: np.ndarray, total: int) -> None:
        self.index = index
        self.total = total

    def _padded(self, logits: np.ndarray) -> np.ndarray:
        pad = np.full((logits.shape[0], 1), _PAD_LOGIT, dtype=logits.dtype)
        return np.concatenate([logits, pad], axis=-1)[:, self.index]

    def sample(
        self, logits: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        padded = self._padded(logits).astype(np.float64)
        gumbel = -np.log(-np.log(rng.uniform(1e-12, 1.0, padded.shape)))
        actions = np.argmax(padded + gumbel, axis=-1).astype(np.int32)
        top = padded.max(axis=-1, keepdims=True)
        log_norm = top[..., 0] + np.log(np.exp(padded - top).sum(axis=-1))
        chosen = np.take_along_axis(padded, actions[..., None], axis=-1)[..., 0]
        log_prob = np.sum(chosen - log_norm, axis=-1)
        return actions, log_prob.astype(np.float32), logits

    def mode(self, logits: np.ndarray) -> np.ndarray:
        return np.argmax(self._padded(logits), axis=-1).astype(np.int32)


def make_multi_categorical(
    action_space: gym.Space, dtype: tf.DType = tf.float32
) -> MultiCategoricalHead:
    """Entry point ``multi_categorical``: a :class:`MultiCategoricalHead` for MultiDiscrete."""
    if not isinstance(action_space, gym.spaces.MultiDiscrete):
        raise IncompatibleSpaceError(
            f"distribution 'multi_categorical' needs a MultiDiscrete action space, got "
            f"{action_space}; set policy.distribution to 'auto' or to one that fits this space"
        )
    if action_space.nvec.size == 0 or np.any(action_space.nvec < 1):
        raise IncompatibleSpaceError(
            f"distribution 'multi_categorical' needs at least one component with n >= 1, "
            f"got nvec={action_space.nvec.tolist()}"
        )
    return MultiCategoricalHead(
        action_space.nvec, action_space.start, env_dtype=action_space.dtype, dtype=dtype
    )
