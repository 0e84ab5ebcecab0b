"""The built-in image env ``pixel_grid``: contract, rewards, and the image it shows."""

from __future__ import annotations

import numpy as np
import pytest

from trpo_tf import registry
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.envs.pixel_grid import PixelGridEnv, make_pixel_grid, optimal_return
from trpo_tf.errors import ConfigError
from trpo_tf.testing import check_env_factory


def test_conforms_and_is_registered() -> None:
    check_env_factory(make_pixel_grid, steps=300)
    check_env_factory(make_pixel_grid, steps=50, size=3, cell=2, max_steps=7)
    assert registry.load(registry.ENVS, "pixel_grid") is make_pixel_grid


def test_training_keeps_the_image_space_beside_the_flattened_one() -> None:
    spec = describe("pixel_grid", make_env_fn("pixel_grid", {"size": 4, "cell": 2}))
    assert spec.env_observation_space.shape == (8, 8, 3)
    assert spec.env_observation_space.dtype == np.uint8
    assert spec.observation_dim == 8 * 8 * 3


def test_image_shows_agent_red_and_goal_green() -> None:
    env = PixelGridEnv(size=4, cell=2)
    observation, info = env.reset(seed=3)
    red = np.argwhere(observation[..., 0] == 255) // 2
    green = np.argwhere(observation[..., 1] == 255) // 2
    assert len(red) == len(green) == 4  # one 2x2 cell each
    agent, goal = red[0], green[0]
    assert (red == agent).all() and (green == goal).all()
    assert info["distance"] == np.abs(agent - goal).sum() > 0
    assert observation[..., 2].max() == 0


def test_shortest_path_earns_the_documented_return() -> None:
    env = PixelGridEnv(size=5)
    observation, info = env.reset(seed=0)
    agent = np.argwhere(observation[..., 0] == 255)[0] // env.cell
    goal = np.argwhere(observation[..., 1] == 255)[0] // env.cell
    moves = [(1 if goal[0] > agent[0] else 0, abs(goal[0] - agent[0]))]
    moves += [(3 if goal[1] > agent[1] else 2, abs(goal[1] - agent[1]))]
    total, steps, terminated = 0.0, 0, False
    for action, count in moves:
        for _ in range(count):
            _, reward, terminated, truncated, _ = env.step(action)
            total, steps = total + reward, steps + 1
            assert not truncated
    assert terminated and steps == info["distance"]
    assert total == pytest.approx(1.0 - 0.9 * steps / env.max_steps)


def test_truncates_after_max_steps_and_refuses_bad_kwargs() -> None:
    env = PixelGridEnv(size=2, max_steps=3)
    env.reset(seed=0)
    env._agent, env._goal = np.array([1, 0]), np.array([1, 1])
    ends = [env.step(0)[1:4] for _ in range(3)]  # up, up, up: stuck on row 0
    assert ends == [(0.0, False, False), (0.0, False, False), (0.0, False, True)]
    with pytest.raises(ConfigError, match=r"env.kwargs.size: must be an int >= 2, got 1"):
        make_pixel_grid(size=1)
    assert optimal_return(5) == pytest.approx(0.85)
