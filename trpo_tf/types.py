"""Rollout data as collected by the sampler, time-major.

Shapes use ``T`` = steps per env per iteration and ``N`` = number of envs
(``T · N`` = ``trainer.steps_per_iteration``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rollout:
    """One batch of experience and what the behavior policy β knew about it.

    Attributes:
        observations: ``[T, N, obs_dim]`` float32, s_t as fed to the policy
            (normalized when observation normalization is on).
        actions: ``[T, N, *action_shape]``, the raw sampled actions (before any
            clipping to the env's bounds).
        rewards: ``[T, N]`` float32, as used for learning (normalized when on).
        raw_rewards: ``[T, N]`` float32, as returned by the env.
        terminated: ``[T, N]`` bool, s_{t+1} is terminal.
        truncated: ``[T, N]`` bool, the episode was cut (time limit) after step t.
        final_observations: ``[T, N, obs_dim]`` float32, the true s_{t+1} where
            ``truncated`` (zeros elsewhere), for bootstrapping V.
        last_observations: ``[N, obs_dim]`` float32, s_T after the last step.
        behavior_log_prob: ``[T, N]`` float32, log β(a_t|s_t) at collection time.
        behavior_params: ``[T, N, param_dim]`` float32, β's distribution parameters.
        policy_version: ``[T, N]`` int64, version of β (iteration it was taken at).
        episode_returns: ``[n_episodes]`` float64, raw returns of episodes that
            finished during this rollout.
        episode_lengths: ``[n_episodes]`` int64.
        nonfinite_replaced: number of non-finite values replaced (when clipping).
        dropped_steps: env steps collected but discarded before this batch (too
            stale, or lost with a crashed worker).
        episode_starts: ``[T, N]`` bool, s_t is the first observation of an episode
            (None where the runner does not record it: asynchronous workers of a
            memoryless policy).
        policy_states: the recurrent policy's state before step t as β used it (after
            the reset at an episode start), one ``[T, N, size]`` float32 array per state
            tensor; ``()`` for a memoryless policy.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    raw_rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_observations: np.ndarray
    last_observations: np.ndarray
    behavior_log_prob: np.ndarray
    behavior_params: np.ndarray
    policy_version: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    nonfinite_replaced: int = 0
    dropped_steps: int = 0
    episode_starts: np.ndarray | None = None
    policy_states: tuple[np.ndarray, ...] = ()

    @property
    def num_steps(self) -> int:
        """``T · N``."""
        return int(self.rewards.size)

    def flat(self, name: str) -> np.ndarray:
        """Field ``name`` reshaped from ``[T, N, ...]`` to ``[T · N, ...]``."""
        value = getattr(self, name)
        return value.reshape((-1, *value.shape[2:]))
