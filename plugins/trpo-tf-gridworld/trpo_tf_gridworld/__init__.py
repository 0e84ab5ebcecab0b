"""A deterministic (optionally slippery) grid world, as a ``trpo_tf.envs`` plug-in.

The agent starts in the top-left cell of a ``size × size`` grid and must reach the
bottom-right goal. Actions (``Discrete(4)``): 0 = up, 1 = right, 2 = down, 3 = left;
moving into the border leaves the agent in place. With probability ``slip`` the
move goes in a uniformly random direction instead.

* Observation: one-hot of the agent's cell, ``Box(0, 1, (size·size,), float32)``.
* Reward: ``+1`` on reaching the goal (the episode terminates), ``−step_penalty``
  for every other step.
* Truncation after ``max_steps`` steps (default ``4 · size²``).

The optimal return is ``1 − step_penalty · (2·size − 3)`` (2·size − 2 moves).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.errors import ConfigError

__all__ = ["GridWorldEnv", "make_gridworld"]

# (row, column) steps of the four actions.
_MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)], dtype=np.int64)


class GridWorldEnv(gym.Env):
    """Reach the far corner of a square grid."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        size: int = 5,
        max_steps: int | None = None,
        slip: float = 0.0,
        step_penalty: float = 0.01,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise ConfigError(f"env.kwargs.size must be an int >= 2, got {size!r}")
        if not 0.0 <= float(slip) <= 1.0:
            raise ConfigError(f"env.kwargs.slip must be in [0, 1], got {slip!r}")
        if render_mode not in (None, "ansi"):
            raise ConfigError(f"env.kwargs.render_mode must be None or 'ansi', got {render_mode!r}")
        self.size = size
        self.max_steps = int(max_steps) if max_steps is not None else 4 * size * size
        self.slip = float(slip)
        self.step_penalty = float(step_penalty)
        self.render_mode = render_mode
        self.goal = np.array([size - 1, size - 1], dtype=np.int64)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (size * size,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self._position = np.zeros(2, dtype=np.int64)
        self._steps = 0

    def _observation(self) -> np.ndarray:
        observation = np.zeros(self.size * self.size, np.float32)
        observation[self._position[0] * self.size + self._position[1]] = 1.0
        return observation

    def _info(self) -> dict[str, Any]:
        return {"position": self._position.copy(), "steps": self._steps}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = np.zeros(2, dtype=np.int64)
        self._steps = 0
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"gridworld: invalid action {action!r}")
        move = int(action)
        if self.slip > 0.0 and self.np_random.random() < self.slip:
            move = int(self.np_random.integers(4))
        self._position = np.clip(self._position + _MOVES[move], 0, self.size - 1)
        self._steps += 1
        terminated = bool(np.array_equal(self._position, self.goal))
        truncated = not terminated and self._steps >= self.max_steps
        reward = 1.0 if terminated else -self.step_penalty
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = []
        for row in range(self.size):
            cells = []
            for column in range(self.size):
                if [row, column] == self._position.tolist():
                    cells.append("A")
                elif [row, column] == self.goal.tolist():
                    cells.append("G")
                else:
                    cells.append(".")
            rows.append(" ".join(cells))
        return "\n".join(rows) + "\n"


def make_gridworld(**kwargs: Any) -> GridWorldEnv:
    """Entry point ``gridworld``: ``env.kwargs`` are :class:`GridWorldEnv` arguments
    (``size``, ``max_steps``, ``slip``, ``step_penalty``)."""
    return GridWorldEnv(**kwargs)
