"""The built-in partially observed envs: ``masked_observation``, ``cartpole_masked``,
``pendulum_masked``: spaces, values against the full env, errors, a tiny training."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf import registry
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.envs.masked import (
    MaskedObservation,
    make_cartpole_masked,
    make_masked_observation,
    make_pendulum_masked,
)
from trpo_tf.errors import ConfigError
from trpo_tf.testing import check_env_factory

ROOT = Path(__file__).resolve().parents[2]
TASKS = [
    ("cartpole_masked", make_cartpole_masked, "CartPole-v1", [0, 2]),
    ("pendulum_masked", make_pendulum_masked, "Pendulum-v1", [0, 1]),
]


def error_of(name: str, kwargs: dict) -> str:
    """The one-line ConfigError of making env ``name`` with ``kwargs`` as training does."""
    with pytest.raises(ConfigError) as info:
        make_env_fn(name, kwargs)().close()
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


@pytest.mark.parametrize(
    ("name", "factory", "env_id", "keep"), TASKS, ids=[task[0] for task in TASKS]
)
def test_registered_and_conforming(name, factory, env_id, keep) -> None:
    assert registry.load(registry.ENVS, name) is factory
    check_env_factory(factory, steps=300)
    check_env_factory(make_masked_observation, steps=50, id=env_id, keep=keep)
    assert registry.load(registry.ENVS, "masked_observation") is make_masked_observation


@pytest.mark.parametrize(
    ("name", "factory", "env_id", "keep"), TASKS, ids=[task[0] for task in TASKS]
)
def test_space_is_the_kept_components_of_the_full_space(name, factory, env_id, keep) -> None:
    full = gym.make(env_id).observation_space
    env = factory()
    space = env.observation_space
    assert isinstance(env, MaskedObservation)
    assert space.shape == (len(keep),) and space.dtype == full.dtype
    np.testing.assert_array_equal(space.low, full.low[keep])
    np.testing.assert_array_equal(space.high, full.high[keep])
    spec = describe(name, make_env_fn(name))
    assert spec.observation_dim == len(keep)
    assert spec.env_observation_space == space


@pytest.mark.parametrize(
    ("name", "factory", "env_id", "keep"), TASKS, ids=[task[0] for task in TASKS]
)
def test_observations_are_the_kept_components_of_the_full_env(name, factory, env_id, keep) -> None:
    """Stepped with the same seed and actions, the masked env shows exactly
    ``full_observation[keep]`` and the same rewards and episode ends, across resets."""
    masked, full = make_env_fn(name)(), gym.make(env_id)
    masked.action_space.seed(1)
    shown, hidden = masked.reset(seed=7)[0], full.reset(seed=7)[0]
    np.testing.assert_array_equal(shown, hidden[keep])
    ends = 0
    for _ in range(400):
        action = masked.action_space.sample()
        *shown, shown_info = masked.step(action)
        *hidden, _ = full.step(action)
        assert shown[0].dtype == hidden[0].dtype
        np.testing.assert_array_equal(shown[0], hidden[0][keep])
        assert shown[1:] == hidden[1:]  # reward, terminated, truncated
        assert masked.observation_space.contains(shown[0])
        if shown[2] or shown[3]:
            ends += 1
            np.testing.assert_array_equal(
                masked.reset(seed=ends)[0], full.reset(seed=ends)[0][keep]
            )
    assert ends >= 1


def test_keep_chooses_and_orders_components_and_kwargs_reach_gymnasium_make() -> None:
    env = make_masked_observation("CartPole-v1", [3, 1], max_episode_steps=5)
    full = gym.make("CartPole-v1")
    np.testing.assert_array_equal(env.reset(seed=2)[0], full.reset(seed=2)[0][[3, 1]])
    np.testing.assert_array_equal(env.observation_space.high, full.observation_space.high[[3, 1]])
    truncated = [env.step(0)[3] for _ in range(5)]
    assert truncated == [False] * 4 + [True]  # 5 pushes cannot topple the pole
    assert gym.make(env.spec).observation_space == env.observation_space  # remade from spec
    pendulum = make_pendulum_masked(g=3.0)
    assert pendulum.unwrapped.g == 3.0


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [0, 4]},
            r"env\.kwargs\.keep: index 4 is out of range for CartPole-v1; must be a non-empty list "
            r"of distinct indices in 0\.\.3",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [-1]},
            r"env\.kwargs\.keep: index -1 is out of range",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [2, 0, 2]},
            r"env\.kwargs\.keep: index 2 is listed more than once",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": []},
            r"env\.kwargs\.keep: empty; list the components to show",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": "0, 2"},
            r"env\.kwargs\.keep: must be a non-empty list .*got '0, 2'",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [0, True]},
            r"env\.kwargs\.keep: True is not an integer index",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [0.0]},
            r"env\.kwargs\.keep: 0\.0 is not an integer index",
        ),
        (
            "masked_observation",
            {"id": "FrozenLake-v1", "keep": [0]},
            r"env\.kwargs\.id: 'FrozenLake-v1' has observation space Discrete\(16\), not a 1-D Box",
        ),
        (
            "masked_observation",
            {"id": "CartPol-v1", "keep": [0]},
            r"env\.kwargs\.id: unknown gymnasium environment 'CartPol-v1'; "
            r"did you mean 'CartPole-v1'",
        ),
        (
            "masked_observation",
            {"id": 3, "keep": [0]},
            r"env\.kwargs\.id: must be a gymnasium id string",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1"},
            r"env\.kwargs: .*missing 1 required positional argument: 'keep'",
        ),
        (
            "masked_observation",
            {"id": "CartPole-v1", "keep": [0], "rendr_mode": None},
            r"unknown key 'env\.kwargs\.rendr_mode'.*did you mean 'render_mode'",
        ),
        (
            "cartpole_masked",
            {"keep": [1]},
            r"env\.kwargs\.keep: cartpole_masked fixes the env .*use env\.id: masked_observation",
        ),
        (
            "pendulum_masked",
            {"id": "CartPole-v1"},
            r"env\.kwargs\.id: pendulum_masked fixes the env",
        ),
        (
            "pendulum_masked",
            {"gravity": 3.0},
            r"unknown key 'env\.kwargs\.gravity': environment 'Pendulum-v1' takes no keyword",
        ),
    ],
)
def test_bad_kwargs_are_one_line_config_errors(name, kwargs, expected) -> None:
    message = error_of(name, kwargs)
    assert re.search(expected, message), message


def test_mlp_trains_on_cartpole_masked(tmp_path) -> None:
    """A memoryless (mlp) policy runs end to end on the masked env: the run records
    the 2-component observation and its evaluations."""
    from trpo_tf.config import experiment_from_dict
    from trpo_tf.train import train

    config = experiment_from_dict(
        {
            "name": "cartpole-masked-smoke",
            "seed": 1,
            "env": {"id": "cartpole_masked", "n_envs": 2},
            "policy": {"hidden": [8]},
            "value": {"hidden": [8], "epochs": 1},
            "trainer": {"total_steps": 256, "steps_per_iteration": 128},
            "eval": {"every": 1, "episodes": 2},
            "tracking": {"tensorboard": False},
            "checkpoint": {"every_s": 0},
        }
    )
    result = train(config, tmp_path / "run", quiet=True)
    assert result.env_steps == 256
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["env_steps"]) for row in rows] == [128, 256]
    assert all(np.isfinite(float(row["eval_return"])) for row in rows)


@pytest.mark.slow
def test_recurrent_benchmark_reports_returns_curves_and_step_costs(tmp_path) -> None:
    """benchmarks/recurrent.py at a toy size: every stage from the shipped experiments
    to the report; the numbers are not checked (docs, not tests, hold those)."""
    out = tmp_path / "recurrent.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "recurrent.py"),
            *("--tasks", "cartpole", "--variants", "lstm", "mlp_full", "--seeds", "0"),
            *("--steps", "512", "--steps-per-iteration", "256", "--eval-every", "1"),
            *("--json", str(out), "--plot", str(tmp_path / "recurrent.png")),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled"),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    task = json.loads(out.read_text())["tasks"]["cartpole"]
    assert task["experiments"]["lstm"]["policy"]["network"]["name"] == "lstm"
    assert task["experiments"]["lstm"]["env"]["id"] == "cartpole_masked"
    assert task["experiments"]["mlp_full"]["env"]["id"] == "CartPole-v1"
    for runs in task["runs"].values():
        (run,) = runs
        assert [point["env_steps"] for point in run["curve"]] == [256, 512]
        assert run["speed"]["train_steps_per_s"] > 0
    assert (
        "| lstm | cartpole_masked |" in done.stdout and "| mlp_full | CartPole-v1 |" in done.stdout
    )
    assert (tmp_path / "recurrent.png").stat().st_size > 0
