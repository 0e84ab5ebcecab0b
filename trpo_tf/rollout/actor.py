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

    def __init__(self, policy: Policy, batch_size: int, observation_dim: int, seed: int) -> None:
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
