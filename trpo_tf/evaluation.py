"""Deterministic evaluation: the policy's mode action, fixed observation stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.errors import TrpoTfError
from trpo_tf.interfaces import DistributionHead
from trpo_tf.normalization import ObservationNormalizer
from trpo_tf.rollout.env_checks import (
    NonFiniteGuard,
    RewardTypeCheck,
    check_reward_array,
    env_raised,
)
from trpo_tf.rollout.sampler import reset_rows

EVAL_SEED_OFFSET = 10_000
"""Training evaluates a run with reset seeds from ``config.seed + EVAL_SEED_OFFSET``."""


class RecurrentAct:
    """Acting with a recurrent policy: one state per env, reset where an episode starts.

    Args:
        step: ``(observations [n, obs_dim], state) -> (actions, next state)``.
        initial_state: ``n -> state`` at an episode's start (zeros).
    """

    def __init__(
        self,
        step: Callable[[np.ndarray, tuple], tuple[np.ndarray, tuple]],
        initial_state: Callable[[int], tuple],
    ) -> None:
        self._step = step
        self._initial_state = initial_state
        self.state: tuple = ()

    def begin(self, n: int) -> None:
        """Every one of ``n`` envs starts an episode."""
        self.state = self._initial_state(n)

    def end_episodes(self, done: np.ndarray) -> None:
        """The envs where ``done [n]`` begin a new episode at their next observation."""
        self.state = reset_rows(self.state, np.asarray(done, bool))

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        actions, self.state = self._step(observations, self.state)
        return actions


def evaluate(
    env_fn: Callable[[], gym.Env],
    act: Callable[[np.ndarray], np.ndarray] | RecurrentAct,
    head: DistributionHead,
    observation_normalizer: ObservationNormalizer,
    episodes: int,
    seed: int,
    max_parallel: int = 16,
    clip_nonfinite: bool = False,
    env_name: str = "environment",
) -> np.ndarray:
    """Returns of ``episodes`` complete episodes, ``[episodes]`` float64.

    Episodes run ``max_parallel`` at a time in a sync vector env; each slot counts
    only its first episode per wave, so short episodes don't bias the sample. A
    :class:`RecurrentAct` starts each wave from the initial state and resets an env's
    state when its episode ends.
    NaN/inf observations and rewards are handled as in training (``env.clip_nonfinite``):
    replaced when ``clip_nonfinite``, else a :class:`~trpo_tf.errors.NonFiniteEnvError`.
    An env that raises in ``reset``/``step``, or returns a reward that is not a number,
    is one :class:`~trpo_tf.errors.EnvRuntimeError` line naming ``env_name``, the call
    and the step (:mod:`trpo_tf.rollout.env_checks`), as in training.
    """
    guard = NonFiniteGuard(env_name, clip_nonfinite)
    returns: list[float] = []
    steps = 0
    wave = 0
    while len(returns) < episodes:
        n = min(max_parallel, episodes - len(returns))
        envs = gym.vector.SyncVectorEnv(
            [lambda: RewardTypeCheck(env_fn(), env_name)] * n,
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        try:
            raw, _ = _env_call(env_name, "reset()", steps, envs.reset, seed=seed + 1000 * wave)
            if isinstance(act, RecurrentAct):
                act.begin(n)
            running = np.zeros(n)
            finished = np.zeros(n, bool)
            while not finished.all():
                raw = guard(np.asarray(raw, np.float64).reshape(n, -1), "observation", steps)
                actions = head.to_env_action(act(observation_normalizer(raw)))
                raw, reward, terminated, truncated, _ = _env_call(
                    env_name, "step()", steps + n, envs.step, actions
                )
                steps += n
                reward = check_reward_array(env_name, reward, steps)
                reward = guard(np.asarray(reward, np.float64), "reward", steps)
                running += np.where(finished, 0.0, reward)
                done = np.logical_or(terminated, truncated)
                finished |= done
                if isinstance(act, RecurrentAct):
                    act.end_episodes(done)
        finally:
            envs.close()
        returns.extend(running.tolist())
        wave += 1
    return np.asarray(returns, np.float64)


def _env_call(env_name: str, call: str, step: int, function: Callable[..., Any], *args, **kwargs):
    """``function(*args, **kwargs)`` on the eval envs; an env's exception becomes one line."""
    try:
        return function(*args, **kwargs)
    except TrpoTfError:
        raise
    except Exception as error:  # noqa: BLE001 - any env failure becomes one line
        raise env_raised(
            env_name, call, error, step, "evaluation", hint="fix the environment"
        ) from error
