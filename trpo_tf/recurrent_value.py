"""A recurrent value function V_φ(s_t | memory) over rollouts, its state carried per env.

With ``value.network: {name: lstm}`` (or ``gru``) V has a state like the policy's.
Values for the advantage estimator come from one pass over each env's column of the
rollout (numpy twin of the network, read at the current φ), starting from the state
the previous rollout ended in and reset to zeros where an episode starts:

    state_t  = (1 − start_t) · state_t          (recorded: the fit starts sequences there)
    V(s_t), state_{t+1} = V_φ.step(s_t, state_t)
    V(s'_t)  = V_φ.step(final observation, state_{t+1})   where truncated[t]
    V(s_T)   = V_φ.step(s_T, reset(state_T, done_{T−1}))

The fit (``trainer/value_fit.py: fit_value_sequences``) then unrolls V over sequences of
``trainer.bptt_length`` from the recorded states. The carried state is part of the
checkpoint; it assumes each env's column continues the previous rollout's, which holds
for the synchronous sampler (asynchronous runners refuse a recurrent V).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from trpo_tf.errors import ConfigError
from trpo_tf.rollout.numpy_actor import mirror_recurrent, read_cell, read_weights
from trpo_tf.rollout.numpy_policy import recurrent_forward
from trpo_tf.rollout.sampler import reset_rows
from trpo_tf.types import Rollout


class RecurrentValues:
    """V_φ over rollouts of ``n_envs`` envs, carrying V's state from one to the next.

    Args:
        value_network: a recurrent network with one output that numpy can mirror (the
            built-in ``lstm`` and ``gru``).
        n_envs: N, the rollout's envs.

    Raises:
        ConfigError: the network cannot be run in numpy.
    """

    def __init__(self, value_network: keras.Model, n_envs: int) -> None:
        mirrored = mirror_recurrent(value_network)
        if mirrored is None:
            raise ConfigError(
                "value.network: a recurrent value network must be the built-in lstm or gru "
                "(its values over a rollout are computed with their numpy twin)"
            )
        self._kind, self._cell_layer, self._layers = mirrored
        self.state_sizes = tuple(value_network.state_sizes)
        self.carry = tuple(np.zeros((n_envs, size), np.float32) for size in self.state_sizes)

    def __call__(self, rollout: Rollout) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """``(values [T, N], next_values [T, N], states)`` at the current φ.

        ``next_values[t]`` is V(s_{t+1}) with the memory of s_t (V(final observation)
        where ``truncated[t]``); ``states`` are V's states before each step, one
        ``[T, N, size]`` array per state tensor. Advances the carried state to the end
        of the rollout.
        """
        cell = read_cell(self._kind, self._cell_layer)
        layers = read_weights(self._layers, np.float32)
        T, N = rollout.rewards.shape
        values = np.zeros((T, N), np.float32)
        final_values = np.zeros((T, N), np.float32)
        states = tuple(np.zeros((T, N, size), np.float32) for size in self.state_sizes)
        state = self.carry
        for t in range(T):
            state = reset_rows(state, rollout.episode_starts[t])
            for stored, part in zip(states, state, strict=True):
                stored[t] = part
            outputs, state = recurrent_forward(cell, layers, rollout.observations[t], state)
            values[t] = outputs[:, 0]
            truncated = np.flatnonzero(rollout.truncated[t])
            if truncated.size:
                final, _ = recurrent_forward(
                    cell,
                    layers,
                    rollout.final_observations[t, truncated],
                    tuple(part[truncated] for part in state),
                )
                final_values[t, truncated] = final[:, 0]
        self.carry = state
        done = np.logical_or(rollout.terminated[-1], rollout.truncated[-1])
        last, _ = recurrent_forward(
            cell, layers, rollout.last_observations.astype(np.float32), reset_rows(state, done)
        )
        next_values = np.concatenate([values[1:], last[None, :, 0]], axis=0)
        next_values = np.where(rollout.truncated, final_values, next_values)
        return values, next_values, states

    def state(self) -> dict[str, Any]:
        """The carried state, for a checkpoint."""
        return {"value_state": tuple(self.carry)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state`."""
        self.carry = tuple(np.asarray(part, np.float32) for part in state["value_state"])
