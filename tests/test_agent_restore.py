"""Saving and restoring the trained artifact: weights and normalizer statistics."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict
from trpo_tf.run_loading import load_run
from trpo_tf.train import train

OBS_DIM = 4
SPACES = {
    "discrete": gym.spaces.Discrete(3),
    "box": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
}


def _config(seed: int, **sections):
    return experiment_from_dict(
        {
            "seed": seed,
            "env": {"n_envs": 4, "normalize_obs": True, "normalize_reward": True},
            "policy": {"hidden": [16, 16]},
            "value": {"hidden": [16]},
            **sections,
        }
    )


def _probe(seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.default_rng(seed).normal(size=(32, OBS_DIM)), tf.float32)


def _snapshot(agent: Agent, probe: tf.Tensor) -> dict[str, np.ndarray]:
    """Everything the artifact should reproduce, as numpy copies."""
    obs_stats = agent.observation_normalizer.stats
    reward_stats = agent.reward_normalizer.stats
    return {
        "dist_params": agent.policy.dist_params(probe).numpy(),
        "values": agent.value_network(probe).numpy(),
        "policy_variables": [np.array(v.numpy()) for v in agent.policy.policy_variables],
        "obs_mean": np.array(obs_stats.mean),
        "obs_var": np.array(obs_stats.var),
        "obs_count": np.array(obs_stats.count),
        "reward_mean": np.array(reward_stats.mean),
        "reward_var": np.array(reward_stats.var),
        "reward_count": np.array(reward_stats.count),
        "reward_returns": np.array(agent.reward_normalizer.returns),
    }


def _assert_same(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if key == "policy_variables":
            assert len(actual[key]) == len(value)
            for got, want in zip(actual[key], value, strict=True):
                np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            np.testing.assert_array_equal(actual[key], value, err_msg=key)


@pytest.mark.parametrize("kind", ["discrete", "box"])
def test_agent_restore_reproduces_saved_agent_exactly(tmp_path, kind):
    space = SPACES[kind]
    saved = Agent.build(_config(seed=0), OBS_DIM, space)
    rng = np.random.default_rng(1)
    # Move every part away from its initial value so that restoring is observable.
    for variable in saved.policy.policy_variables + list(saved.value_network.weights):
        variable.assign(rng.normal(scale=0.3, size=variable.shape).astype(np.float32))
    saved.observation_normalizer(rng.normal(5.0, 2.0, size=(50, OBS_DIM)), update=True)
    for _ in range(5):
        saved.reward_normalizer(rng.normal(size=4), rng.uniform(size=4) < 0.3)
    probe = _probe()
    expected = _snapshot(saved, probe)
    saved.save(tmp_path / "policy")

    restored = Agent.build(_config(seed=11), OBS_DIM, space)
    before = _snapshot(restored, probe)
    assert not np.array_equal(before["dist_params"], expected["dist_params"])
    assert not np.array_equal(before["obs_mean"], expected["obs_mean"])
    restored.restore(tmp_path / "policy")
    _assert_same(_snapshot(restored, probe), expected)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray], object]:
    """Train a tiny CartPole run in-process, recording the agent at save time."""
    run_dir = tmp_path_factory.mktemp("agent_restore") / "run"
    config = _config(
        seed=2,
        trainer={"total_steps": 1024, "steps_per_iteration": 512},
        eval={"episodes": 1, "every": 1},
    )
    recorded: dict[str, np.ndarray] = {}
    original_save = Agent.save

    def recording_save(self: Agent, directory: Path) -> None:
        recorded.update(_snapshot(self, _probe()))
        original_save(self, directory)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Agent, "save", recording_save)
        result = train(config, run_dir, quiet=True)
    assert result.env_steps == 1024
    assert recorded, "train() never saved the agent"
    return run_dir, recorded, config


def test_load_run_restores_the_weights_training_ended_with(trained_run):
    run_dir, recorded, config = trained_run
    loaded_config, agent = load_run(run_dir)
    assert loaded_config == config
    _assert_same(_snapshot(agent, _probe()), recorded)
    # Training moved the statistics (normalize_obs is on), so this is not vacuous.
    assert not np.array_equal(recorded["obs_mean"], np.zeros(OBS_DIM))


def test_load_run_is_deterministic(trained_run):
    run_dir, _, _ = trained_run
    _, first = load_run(run_dir)
    _, second = load_run(run_dir)
    _assert_same(_snapshot(first, _probe(3)), _snapshot(second, _probe(3)))


def test_checkpoint_holds_the_trained_policy_variables(trained_run):
    run_dir, recorded, _ = trained_run
    reader = tf.train.load_checkpoint(str(run_dir / "policy" / "weights"))
    stored = [
        reader.get_tensor(name)
        for name, _ in tf.train.list_variables(str(run_dir / "policy" / "weights"))
        if name.startswith("policy_network/") and name.endswith("VARIABLE_VALUE")
    ]
    # Every trained policy-network array is in the checkpoint (order is by name there).
    want = recorded["policy_variables"]
    assert len(stored) == len(want)
    for array in want:
        assert any(s.shape == array.shape and np.array_equal(s, array) for s in stored)
