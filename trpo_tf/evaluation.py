"""Deterministic evaluation: the policy's mode action, fixed observation stats."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from trpo_tf.interfaces import DistributionHead
from trpo_tf.normalization import ObservationNormalizer


def evaluate(
    env_fn: Callable[[], gym.Env],
    act: Callable[[np.ndarray], np.ndarray],
    head: DistributionHead,
    observation_normalizer: ObservationNormalizer,
    episodes: int,
    seed: int,
    max_parallel: int = 16,
) -> np.ndarray:
    """Returns of ``episodes`` complete episodes, ``[episodes]`` float64.

    Episodes run ``max_parallel`` at a time in a sync vector env; each slot counts
    only its first episode per wave, so short episodes don't bias the sample.
    """
    returns: list[float] = []
    wave = 0
    while len(returns) < episodes:
        n = min(max_parallel, episodes - len(returns))
        envs = gym.vector.SyncVectorEnv(
            [env_fn] * n, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        try:
            raw, _ = envs.reset(seed=seed + 1000 * wave)
            running = np.zeros(n)
            finished = np.zeros(n, bool)
            while not finished.all():
                obs = observation_normalizer(np.asarray(raw, np.float64).reshape(n, -1))
                actions = head.to_env_action(act(obs))
                raw, reward, terminated, truncated, _ = envs.step(actions)
                running += np.where(finished, 0.0, reward)
                finished |= np.logical_or(terminated, truncated)
        finally:
            envs.close()
        returns.extend(running.tolist())
        wave += 1
    return np.asarray(returns, np.float64)
