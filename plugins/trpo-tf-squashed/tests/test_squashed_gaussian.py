"""The squashed Gaussian against the conformance kit, plus its own properties."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
from trpo_tf_squashed import SquashedGaussianHead, make_squashed_gaussian

from trpo_tf import registry
from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.testing import check_distribution

BOX = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def test_registered_under_trpo_tf_distributions() -> None:
    assert "squashed_gaussian" in registry.names(registry.DISTRIBUTIONS)
    assert registry.load(registry.DISTRIBUTIONS, "squashed_gaussian") is make_squashed_gaussian


@pytest.mark.parametrize(
    ("space", "kwargs"),
    [
        (BOX, {}),
        (gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32), {"log_std_init": -1.0}),
        (gym.spaces.Box(-3.0, 3.0, (1,), np.float64), {"dtype": tf.float64}),
    ],
)
def test_conforms(space, kwargs) -> None:
    head = check_distribution(make_squashed_gaussian, space, **kwargs)
    assert isinstance(head, SquashedGaussianHead)


def test_std_depends_on_the_state_and_starts_at_log_std_init() -> None:
    head = make_squashed_gaussian(BOX, log_std_init=-0.7, log_std_min=-4.0, log_std_max=0.5)
    zero = head.params(tf.zeros([1, 4])).numpy()
    np.testing.assert_allclose(zero[0, 2:], [-0.7, -0.7], rtol=1e-6)
    extreme = head.params(tf.constant([[0.0, 0.0, 50.0, -50.0]])).numpy()
    np.testing.assert_allclose(extreme[0, 2:], [0.5, -4.0], atol=1e-5)
    assert head.trainable_variables == ()


def test_to_env_action_squashes_into_the_box() -> None:
    head = make_squashed_gaussian(BOX)
    latent = np.array([[0.0, 0.0], [1e6, -1e6], [-40.0, 40.0]], np.float32)
    env_actions = head.to_env_action(latent)
    np.testing.assert_allclose(env_actions[0], [0.0, 0.5], atol=1e-7)
    np.testing.assert_array_equal(env_actions[1], [2.0, 0.0])
    np.testing.assert_array_equal(env_actions[2], [-2.0, 1.0])
    assert env_actions.dtype == np.float32
    assert all(BOX.contains(row) for row in env_actions)


def test_kl_is_the_latent_gaussian_kl_in_closed_form() -> None:
    head = make_squashed_gaussian(BOX, dtype=tf.float64)
    rng = np.random.default_rng(0)
    p = head.params(tf.constant(rng.normal(size=(5, 4)))).numpy()
    q = head.params(tf.constant(rng.normal(size=(5, 4)))).numpy()
    kl = head.distribution(tf.constant(p)).kl_divergence(head.distribution(tf.constant(q)))
    mu_p, ls_p, mu_q, ls_q = p[:, :2], p[:, 2:], q[:, :2], q[:, 2:]
    sp, sq = np.exp(ls_p), np.exp(ls_q)
    expected = np.sum(np.log(sq / sp) + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - 0.5, axis=-1)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("space", "kwargs", "match"),
    [
        (gym.spaces.Discrete(3), {}, "float Box"),
        (gym.spaces.Box(-np.inf, np.inf, (2,), np.float32), {}, "finite"),
        (BOX, {"log_std_init": 2.0}, "log_std_min < log_std_init < log_std_max"),
    ],
)
def test_rejects_unsupported_spaces_and_ranges(space, kwargs, match) -> None:
    with pytest.raises(IncompatibleSpaceError, match=match):
        make_squashed_gaussian(space, **kwargs)


@pytest.mark.slow
def test_trains_pendulum_through_the_cli(tmp_path) -> None:
    # No numpy_sampler: rollouts go through trpo_tf's compiled TensorFlow actor.
    run_dir = tmp_path / "run"
    overrides = {
        "env.id": "Pendulum-v1",
        "env.n_envs": "4",
        "policy.distribution": "squashed_gaussian",
        "policy.distribution_kwargs": "{log_std_init: -1.0}",
        "policy.hidden": "[16,16]",
        "trainer.total_steps": "1024",
        "trainer.steps_per_iteration": "512",
        "trainer.jit_compile": "false",
        "eval.episodes": "1",
        "tracking.tensorboard": "false",
    }
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text("name: pendulum-squashed\n")
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    result = subprocess.run(
        [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), *sets]
        + ["--run-dir", str(run_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["env_steps"]) for row in rows] == [512, 1024]
    assert all(0.0 < float(row["policy_std"]) < 1.0 for row in rows)
    # The exported SavedModel squashes like training does (to_env_action_graph).
    from trpo_tf.run_loading import load_run

    _, agent = load_run(run_dir)
    exported = tf.saved_model.load(str(run_dir / "export"))
    observations = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    head = agent.policy.head
    params = agent.policy.dist_params(agent.observation_normalizer(observations))
    expected = head.to_env_action(head.mode(params).numpy())
    got = exported.signatures["action"](observation=tf.constant(observations))["action"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
