"""Compiled policy calls used while stepping environments."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from trpo_tf.policy import Policy
from trpo_tf.trainer.tracing import traced_without_op_tracebacks


class Actor(tf.Module):
    """Samples actions for a fixed-size batch of observations, XLA-compiled.

    ``sample(obs [n, obs_dim]) -> (action [n, *action_shape], log_prob [n],
    params [n, param_dim])``; ``mode(obs [b, obs_dim]) -> action`` (any batch).
    Sampling is stateless-seeded from a checkpointable ``tf.random.Generator``,
    so a run is reproducible from its seed.
    """

    def __init__(
        self, policy: Policy, batch_size: int | None, observation_dim: int, seed: int
    ) -> None:
        super().__init__(name="actor")
        self.policy = policy
        self.generator = tf.random.Generator.from_seed(seed)
        self._sample = tf.function(
            traced_without_op_tracebacks(self._sample_graph),
            input_signature=[tf.TensorSpec([batch_size, observation_dim], tf.float32)],
            jit_compile=True,
            autograph=False,
        )
        self._mode = tf.function(
            traced_without_op_tracebacks(self._mode_graph),
            input_signature=[tf.TensorSpec([None, observation_dim], tf.float32)],
            autograph=False,
        )

    def _sample_graph(self, observations):
        params = self.policy.dist_params(observations)
        distribution = self.policy.distribution(params)
        seed = tf.cast(self.generator.make_seeds(1)[:, 0], tf.int32)
        actions = distribution.sample(seed=seed)
        return actions, distribution.log_prob(actions), params

    def _mode_graph(self, observations):
        return self.policy.head.mode(self.policy.dist_params(observations))

    def sync(self) -> None:
        """No-op: the compiled functions read the policy variables directly."""

    def sample(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample a ~ π(·|s); returns numpy (action, log_prob, params)."""
        actions, log_prob, params = self._sample(observations)
        return actions.numpy(), log_prob.numpy(), params.numpy()

    def mode(self, observations: np.ndarray) -> np.ndarray:
        """Deterministic action for evaluation."""
        return self._mode(observations).numpy()


class RecurrentActor(tf.Module):
    """The :class:`Actor` of a recurrent policy: it carries the network's state.

    ``sample(obs [n, obs_dim], state) -> (action, log_prob [n], params [n, P], state')``
    with ``state`` a tuple of ``[n, size]`` arrays (one per ``policy.state_sizes``),
    XLA-compiled for the fixed ``n``; ``mode(obs [b, obs_dim], state) -> (action,
    state')`` for any batch. The caller keeps the state, and resets a row to
    :meth:`initial_state`'s (zeros) where an episode starts.
    """

    recurrent = True

    def __init__(
        self, policy: Policy, batch_size: int | None, observation_dim: int, seed: int
    ) -> None:
        super().__init__(name="actor")
        self.policy = policy
        self.generator = tf.random.Generator.from_seed(seed)
        self.state_sizes = policy.state_sizes

        def state_spec(batch: int | None) -> tuple[tf.TensorSpec, ...]:
            return tuple(tf.TensorSpec([batch, size], tf.float32) for size in self.state_sizes)

        self._sample = tf.function(
            traced_without_op_tracebacks(self._sample_graph),
            input_signature=[
                tf.TensorSpec([batch_size, observation_dim], tf.float32),
                state_spec(batch_size),
            ],
            jit_compile=batch_size is not None,
            autograph=False,
        )
        self._mode = tf.function(
            traced_without_op_tracebacks(self._mode_graph),
            input_signature=[tf.TensorSpec([None, observation_dim], tf.float32), state_spec(None)],
            autograph=False,
        )

    def _sample_graph(self, observations, state):
        params, next_state = self.policy.step_params(observations, state)
        distribution = self.policy.distribution(params)
        seed = tf.cast(self.generator.make_seeds(1)[:, 0], tf.int32)
        actions = distribution.sample(seed=seed)
        return actions, distribution.log_prob(actions), params, next_state

    def _mode_graph(self, observations, state):
        params, next_state = self.policy.step_params(observations, state)
        return self.policy.head.mode(params), next_state

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """Zeros ``[batch_size, size]`` per state tensor (an episode's start)."""
        return tuple(np.zeros((batch_size, size), np.float32) for size in self.state_sizes)

    def sync(self) -> None:
        """No-op: the compiled functions read the policy variables directly."""

    def sample(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Sample a ~ π(·|s, state); numpy (action, log_prob, params, next state)."""
        actions, log_prob, params, next_state = self._sample(observations, tuple(state))
        return (
            actions.numpy(),
            log_prob.numpy(),
            params.numpy(),
            tuple(part.numpy() for part in next_state),
        )

    def mode(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Deterministic action and the next state."""
        actions, next_state = self._mode(observations, tuple(state))
        return actions.numpy(), tuple(part.numpy() for part in next_state)
