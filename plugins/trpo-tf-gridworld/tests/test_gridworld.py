"""The grid world against the conformance kit, its dynamics, and training via the CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from trpo_tf_gridworld import GridWorldEnv, make_gridworld

from trpo_tf import registry
from trpo_tf.errors import ConfigError
from trpo_tf.testing import check_env_factory

UP, RIGHT, DOWN, LEFT = range(4)
# experiments/gridworld.yaml when these tests run from a trpo_tf checkout.
EXPERIMENT = Path(__file__).resolve().parents[3] / "experiments" / "gridworld.yaml"


def test_registered_under_trpo_tf_envs() -> None:
    assert "gridworld" in registry.names(registry.ENVS)
    assert registry.load(registry.ENVS, "gridworld") is make_gridworld


@pytest.mark.parametrize(
    "kwargs", [{}, {"size": 3, "slip": 0.3}, {"size": 4, "max_steps": 5, "step_penalty": 0.1}]
)
def test_conforms(kwargs) -> None:
    check_env_factory(make_gridworld, **kwargs)


def test_shortest_path_reaches_the_goal() -> None:
    env = make_gridworld(size=3)
    observation, _ = env.reset(seed=0)
    assert observation.shape == (9,) and observation[0] == 1.0
    rewards = []
    for action in (RIGHT, RIGHT, DOWN, DOWN):
        observation, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
    assert terminated and not truncated
    assert observation[8] == 1.0 and observation.sum() == 1.0
    assert rewards == [-0.01, -0.01, -0.01, 1.0]
    assert info["position"].tolist() == [2, 2]


def test_walls_keep_the_agent_inside_and_time_limit_truncates() -> None:
    env = make_gridworld(size=3, max_steps=3)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(UP)
    assert info["position"].tolist() == [0, 0] and not (terminated or truncated)
    env.step(LEFT)
    _, reward, terminated, truncated, _ = env.step(LEFT)
    assert truncated and not terminated
    assert reward == pytest.approx(-0.01)


def test_slip_randomizes_moves_reproducibly() -> None:
    def positions(seed: int) -> list[list[int]]:
        env = make_gridworld(size=6, slip=1.0, max_steps=1000)
        env.reset(seed=seed)
        return [env.step(RIGHT)[4]["position"].tolist() for _ in range(30)]

    assert positions(1) == positions(1)
    assert any(p[0] > 0 for p in positions(1))  # some slips went down, not right


def test_ansi_render() -> None:
    env = GridWorldEnv(size=2, render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "A .\n. G\n"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"size": 1}, "size"), ({"slip": 2.0}, "slip"), ({"render_mode": "human"}, "render_mode")],
)
def test_bad_kwargs_are_config_errors(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        make_gridworld(**kwargs)


def test_vector_env_from_the_entry_point() -> None:
    envs = gym.vector.SyncVectorEnv([lambda: make_gridworld(size=4)] * 3)
    observations, _ = envs.reset(seed=0)
    assert observations.shape == (3, 16)
    observations, rewards, *_ = envs.step(np.array([RIGHT, DOWN, LEFT]))
    assert rewards.shape == (3,)
    envs.close()


@pytest.mark.slow
@pytest.mark.skipif(not EXPERIMENT.exists(), reason="needs experiments/gridworld.yaml")
def test_trains_from_the_experiment_through_the_cli(tmp_path) -> None:
    run_dir = tmp_path / "run"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trpo_tf.cli",
            "train",
            str(EXPERIMENT),
            "--set",
            "trainer.total_steps=2048",
            "--run-dir",
            str(run_dir),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and int(rows[0]["env_steps"]) == 2048
    summary = json.loads((run_dir / "summary.json").read_text())
    assert np.isfinite(summary["final_eval_return"])
