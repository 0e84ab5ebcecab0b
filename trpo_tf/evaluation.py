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

EVAL_SEED_OFFSET = 10_000
"""Training evaluates a run with reset seeds from ``config.seed + EVAL_SEED_OFFSET``."""


def evaluate(
    env_fn: Callable[[], gym.Env],
    act: Callable[[np.ndarray], np.ndarray],
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
    only its first episode per wave, so short episodes don't bias the sample.
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
                finished |= np.logical_or(terminated, truncated)
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
