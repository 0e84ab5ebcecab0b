"""``pixel_grid``: reach a goal on a small grid seen only as an RGB image.

A built-in ``trpo_tf.envs`` plug-in for image-observation tests and benchmarks that
train in minutes on two CPU cores (the ``cnn`` network, docs/benchmarks/networks.md).

* Observation: ``Box(0, 255, (size·cell, size·cell, 3), uint8)``, channels last. The
  agent's cell is red (255 in channel 0), the goal's green (255 in channel 1), the
  rest black; each grid cell is ``cell × cell`` pixels.
* Actions: ``Discrete(4)``: up, down, left, right; a move off the grid stays put.
* Start: agent and goal on two distinct cells drawn uniformly (from ``reset``'s seed).
* Reward: ``1 − 0.9 · t / max_steps`` on the step ``t`` that reaches the goal (the
  episode terminates), 0 otherwise, as MiniGrid rewards; truncated after
  ``max_steps`` (default ``4 · size``) steps. The best possible return of an episode
  is ``1 − 0.9 · d / max_steps`` for ``d`` the Manhattan distance at the start
  (:func:`optimal_return`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.errors import ConfigError

_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], np.int64)


class PixelGridEnv(gym.Env):
    """The grid as an image; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        size: int = 5,
        cell: int = 3,
        max_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        for name, value, low in (("size", size, 2), ("cell", cell, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"env.kwargs.{name}: must be an int >= {low}, got {value!r}")
        if max_steps is not None and (
            isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
        ):
            raise ConfigError(f"env.kwargs.max_steps: must be an int >= 1, got {max_steps!r}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"env.kwargs.render_mode: rgb_array or null, got {render_mode!r}")
        self.size = size
        self.cell = cell
        self.max_steps = 4 * size if max_steps is None else max_steps
        self.render_mode = render_mode
        pixels = size * cell
        self.observation_space = gym.spaces.Box(0, 255, (pixels, pixels, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self._agent = np.zeros(2, np.int64)
        self._goal = np.zeros(2, np.int64)
        self._steps = 0

    def _observation(self) -> np.ndarray:
        grid = np.zeros((self.size, self.size, 3), np.uint8)
        grid[self._agent[0], self._agent[1], 0] = 255
        grid[self._goal[0], self._goal[1], 1] = 255
        return np.repeat(np.repeat(grid, self.cell, axis=0), self.cell, axis=1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        agent, goal = self.np_random.choice(self.size * self.size, size=2, replace=False)
        self._agent = np.array(divmod(int(agent), self.size), np.int64)
        self._goal = np.array(divmod(int(goal), self.size), np.int64)
        self._steps = 0
        return self._observation(), {"distance": self.distance}

    @property
    def distance(self) -> int:
        """Manhattan distance from the agent to the goal."""
        return int(np.abs(self._agent - self._goal).sum())

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        move = _MOVES[int(action)]
        self._agent = np.clip(self._agent + move, 0, self.size - 1)
        self._steps += 1
        reached = bool((self._agent == self._goal).all())
        reward = 1.0 - 0.9 * self._steps / self.max_steps if reached else 0.0
        truncated = not reached and self._steps >= self.max_steps
        return self._observation(), float(reward), reached, truncated, {"distance": self.distance}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        # Large enough to see in a video: at least 8 pixels per cell.
        scale = max(1, -(-8 // self.cell))
        frame = self._observation()
        return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


def make_pixel_grid(
    size: int = 5, cell: int = 3, max_steps: int | None = None, render_mode: str | None = None
) -> PixelGridEnv:
    """Entry point ``pixel_grid`` (``env.id: pixel_grid``, keywords in ``env.kwargs``)."""
    return PixelGridEnv(size=size, cell=cell, max_steps=max_steps, render_mode=render_mode)


def optimal_return(size: int = 5, max_steps: int | None = None) -> float:
    """Expected return of the shortest path over the uniform start distribution."""
    limit = 4 * size if max_steps is None else max_steps
    cells = np.array([(row, col) for row in range(size) for col in range(size)])
    distances = np.abs(cells[:, None, :] - cells[None, :, :]).sum(-1)
    pairs = distances[~np.eye(len(cells), dtype=bool)]
    returns = np.where(pairs <= limit, 1.0 - 0.9 * pairs / limit, 0.0)
    return float(returns.mean())
