"""``FaultyCartPole-v1``: CartPole that fails as asked, registered with gymnasium on import.

For end-to-end runs through the CLI: a ``sitecustomize`` that imports this module
registers the env in the CLI process and in its rollout workers. ``reward``
replaces every reward (a str, 1e39); ``raise_in_step_at`` raises at that step of
every episode.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv


class SimulatorDiverged(RuntimeError):
    """What the faulty CartPole raises."""


class FaultyCartPole(CartPoleEnv):
    def __init__(
        self, reward: Any = None, raise_in_step_at: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.fixed_reward = reward
        self.raise_in_step_at = raise_in_step_at
        self.episode_step = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.episode_step = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.episode_step += 1
        if self.episode_step == self.raise_in_step_at:
            raise SimulatorDiverged(f"pole angle exploded at episode step {self.episode_step}")
        observation, reward, terminated, truncated, info = super().step(action)
        if self.fixed_reward is not None:
            reward = self.fixed_reward
        return observation, reward, terminated, truncated, info


if "FaultyCartPole-v1" not in gym.registry:
    gym.register(
        "FaultyCartPole-v1",
        entry_point=FaultyCartPole,
        max_episode_steps=500,
        disable_env_checker=True,  # gymnasium's own warnings are not what is tested
    )
