"""Environments for the asynchronous runners' tests, importable by worker processes.

``CountingEnv`` observes ``[t, 0]`` where ``t`` counts the steps since its last
reset, rewards 1 per step and terminates at ``t = episode_length``. With
``crash_at`` it fails on that step of its life: ``crash_mode="raise"`` raises
inside ``step``; ``"exit"`` kills its whole process with ``os._exit(1)``. The
crash happens once per test: the first env to get there creates ``marker``, and
envs that find it already there never crash. Without a ``marker`` it crashes at
that step of every episode (``"reset"``: in every ``reset``), as a broken
simulator would. ``reward`` replaces the reward of 1 (a str, 1e39, ...).
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np


class EnvCrash(RuntimeError):
    """The injected env failure."""


def _claim(marker: str) -> bool:
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class CountingEnv(gym.Env):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        episode_length: int = 10,
        crash_at: int | None = None,
        crash_mode: str = "raise",
        marker: str | None = None,
        reward: Any = 1.0,
    ) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.episode_length = episode_length
        self.crash_at = crash_at
        self.crash_mode = crash_mode
        self.marker = marker
        self.reward = reward
        self.t = 0
        self.life_steps = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, 0.0], np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.crash_mode == "reset":
            raise EnvCrash("injected failure in reset")
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.life_steps += 1
        if self.marker is None and self.crash_at is not None and self.t + 1 == self.crash_at:
            self._crash(f"injected failure at episode step {self.crash_at}")
        if self.life_steps == self.crash_at and self.marker and _claim(self.marker):
            self._crash(f"injected failure at life step {self.life_steps}")
        self.t += 1
        return self._obs(), self.reward, self.t >= self.episode_length, False, {}

    def _crash(self, message: str) -> None:
        if self.crash_mode == "exit":
            os._exit(1)
        raise EnvCrash(message)


_CACHED: dict[int, CountingEnv] = {}


def cached_counting_env() -> CountingEnv:
    """A broken factory: the same instance on every call (per process)."""
    return _CACHED.setdefault(os.getpid(), CountingEnv())
