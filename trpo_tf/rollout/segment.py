"""What a rollout worker is built from and what it sends back (all picklable).

:class:`EnvFactory` rebuilds an env by name in another process, :class:`WorkerSpec`
is every worker's recipe, and :class:`Segment` is ``T`` steps of a worker's ``k``
envs under one behavior policy β. Like :mod:`trpo_tf.rollout.async_worker`, this
module must never import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


class EnvFactory:
    """Picklable ``() -> gym.Env`` for an ``env.id``, ``env.kwargs`` and ``env.max_episode_steps``.

    The closure :func:`~trpo_tf.envs.make_env_fn` returns cannot cross a process
    boundary; this rebuilds it by name inside the worker.
    """

    def __init__(
        self,
        env_id: str,
        kwargs: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        self.env_id = env_id
        self.kwargs = dict(kwargs or {})
        self.max_episode_steps = max_episode_steps
        self._make: Callable[[], gym.Env] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "kwargs": self.kwargs,
            "max_episode_steps": self.max_episode_steps,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["env_id"], state["kwargs"], state.get("max_episode_steps"))

    def __call__(self) -> gym.Env:
        if self._make is None:
            from trpo_tf.envs import make_env_fn

            self._make = make_env_fn(self.env_id, self.kwargs, self.max_episode_steps)
        return self._make()


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of one runner is built from (picklable).

    Attributes:
        env_fn: picklable zero-argument env constructor.
        env_name: for error messages.
        n_envs: env copies per worker (``k``).
        segment_length: steps per env per segment (``T``).
        seed: base seed; worker ``w``'s ``i``-th incarnation derives its own.
        clip_nonfinite: replace NaN/inf from the env instead of failing.
    """

    env_fn: Callable[[], gym.Env]
    env_name: str
    n_envs: int
    segment_length: int
    seed: int
    clip_nonfinite: bool = False


@dataclass
class Segment:
    """``T`` consecutive steps of a worker's ``k`` envs, all taken by one β.

    Arrays are time-major ``[T, k, ...]`` like :class:`~trpo_tf.types.Rollout`.

    Attributes:
        worker: index of the worker that collected it.
        sequence: its number among that worker incarnation's segments.
        policy_version: version of the snapshot β that acted.
        observations: ``[T, k, obs_dim]`` float32, s_t normalized as β saw it.
        raw_observations: ``[T, k, obs_dim]`` float64, s_t as the env returned it.
        actions: ``[T, k, *action_shape]`` sampled (unclipped) actions.
        raw_rewards: ``[T, k]`` float64.
        terminated, truncated: ``[T, k]`` bool.
        final_observations: ``[T, k, obs_dim]`` float32, normalized true s_{t+1}
            where ``truncated`` (zeros elsewhere).
        last_observations: ``[k, obs_dim]`` float32, normalized s_T.
        behavior_log_prob: ``[T, k]`` float32, log β(a_t|s_t).
        behavior_params: ``[T, k, param_dim]`` float32.
        episode_returns, episode_lengths: episodes that ended in this segment.
        env_steps: env steps taken, discarded ones included (≥ ``T · k``).
        discarded_steps: steps of partial episodes thrown away after env errors.
        env_errors: one line per env failure not already sent through ``report``.
        nonfinite_replaced: non-finite values replaced (with ``clip_nonfinite``).
        episode_starts: ``[T, k]`` bool, s_t begins an episode (a recurrent β only,
            else None); row 0 carries on from the worker's previous segment.
        policy_states: a recurrent β's state before step t, after the reset at an
            episode start, one ``[T, k, size]`` float32 array per state tensor
            (``()`` for a memoryless β).
    """

    worker: int
    sequence: int
    policy_version: int
    observations: np.ndarray
    raw_observations: np.ndarray
    actions: np.ndarray
    raw_rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_observations: np.ndarray
    last_observations: np.ndarray
    behavior_log_prob: np.ndarray
    behavior_params: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    env_steps: int
    discarded_steps: int = 0
    env_errors: list[str] = field(default_factory=list)
    nonfinite_replaced: int = 0
    episode_starts: np.ndarray | None = None
    policy_states: tuple[np.ndarray, ...] = ()

    @property
    def num_steps(self) -> int:
        """``T · k``: the steps this segment contributes to a batch."""
        return int(self.raw_rewards.size)
