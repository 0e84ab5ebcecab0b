"""Environments for the Ray and step-budget tests, importable by worker processes.

``PacedCountingEnv`` is ``CountingEnv`` whose steps take ``delay_s`` in one
worker process: the first to build one (it writes its pid into ``marker``). One
worker is then several times slower than the others, the case where a batch made
of the first segments to arrive would leave the slow worker's segment for a
later batch, too old to use.

``KillOnceCartPole-v1`` (registered by :func:`register`, which the Ray tests run
in every Ray worker) is CartPole that sends SIGKILL to its own process at life
step ``kill_at``, once per ``marker`` file: a rollout worker killed with kill -9
mid-segment.
"""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
from crashing_env import CountingEnv
from gymnasium.envs.classic_control import CartPoleEnv


def _claim(marker: str, content: str) -> bool:
    """Create ``marker`` holding ``content``; False when it already exists."""
    try:
        descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return True


class PacedCountingEnv(CountingEnv):
    def __init__(self, marker: str, delay_s: float, **kwargs) -> None:
        super().__init__(**kwargs)
        pid = str(os.getpid())
        _claim(marker, pid)
        for _ in range(100):  # the claiming process may not have written its pid yet
            with open(marker) as handle:
                owner = handle.read()
            if owner:
                break
            time.sleep(0.01)
        self.delay_s = delay_s if owner == pid else 0.0

    def step(self, action):
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().step(action)


class KillOnceCartPole(CartPoleEnv):
    def __init__(self, kill_at: int = 100, marker: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.kill_at = kill_at
        self.marker = marker
        self.life_steps = 0

    def step(self, action):
        self.life_steps += 1
        if self.life_steps == self.kill_at and self.marker and _claim(self.marker, "killed"):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


def register() -> None:
    """Register ``KillOnceCartPole-v1`` (a Ray ``worker_process_setup_hook``)."""
    if "KillOnceCartPole-v1" not in gym.registry:
        gym.register(
            "KillOnceCartPole-v1",
            entry_point=KillOnceCartPole,
            max_episode_steps=500,
            disable_env_checker=True,
        )


register()
