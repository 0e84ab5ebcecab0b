"""gSDE: per-state Gaussian from the last hidden features, noise held for a few steps."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.distributions import make_gsde
from trpo_tf.errors import ConfigError, IncompatibleSpaceError
from trpo_tf.rollout.numpy_actor import NumpyActor

BOX = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)


def test_variance_is_the_feature_weighted_sum_and_features_get_no_std_gradient() -> None:
    head = make_gsde(BOX, num_features=3, log_std_init=-0.5)
    head.log_std.assign(np.log([[1.0, 2.0], [0.5, 1.0], [1.0, 0.1]]).astype(np.float32))
    net_out = tf.constant([[0.3, -0.1, 1.0, -2.0, 0.5], [0.0, 0.2, 0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        tape.watch(net_out)
        params = head.params(net_out)
        log_std = params[:, 2:]
    # σ_d(s)² = Σ_j φ_j² σ_jd² + 1e-6
    phi = net_out.numpy()[:, 2:]
    expected = 0.5 * np.log(phi**2 @ np.array([[1.0, 4.0], [0.25, 1.0], [1.0, 0.01]]) + 1e-6)
    np.testing.assert_allclose(log_std.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(params.numpy()[:, :2], net_out.numpy()[:, :2])
    assert float(tf.reduce_sum(tf.abs(tape.gradient(log_std, net_out)))) == 0.0
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head.params(net_out)[:, 2:])
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, head.log_std)))) > 0.0


def test_numpy_sampler_holds_its_noise_and_reports_the_per_step_density() -> None:
    head = make_gsde(BOX, num_features=4, resample_every=3)
    sampler = head.numpy_sampler()
    rng = np.random.default_rng(0)
    net_out = rng.normal(size=(2, 6)).astype(np.float32)
    draws = [sampler.sample(net_out, rng) for _ in range(4)]
    # same state, same Θ for 3 calls: the same action; the 4th call draws a new Θ
    np.testing.assert_array_equal(draws[0][0], draws[1][0])
    np.testing.assert_array_equal(draws[0][0], draws[2][0])
    assert not np.allclose(draws[0][0], draws[3][0])
    actions, log_prob, params = draws[0]
    np.testing.assert_allclose(params, head.params(tf.constant(net_out)).numpy(), rtol=1e-5)
    expected = head.distribution(tf.constant(params)).log_prob(actions).numpy()
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)


def test_policy_network_appends_its_features_and_the_numpy_mirror_matches() -> None:
    config = experiment_from_dict(
        {
            "policy": {
                "distribution": "gsde",
                "hidden": [16, 8],
                "distribution_kwargs": {"num_features": 8},
            }
        }
    )
    policy = build_policy(config, 3, BOX)
    observations = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    assert policy.network(observations).shape == (5, 2 + 8)
    actor = NumpyActor(policy, seed=0)
    _, _, params = actor.sample(observations)
    np.testing.assert_allclose(params, policy.dist_params(observations).numpy(), atol=1e-5)


def test_mismatched_feature_count_and_bad_settings_are_one_line_errors() -> None:
    config = experiment_from_dict({"policy": {"distribution": "gsde", "hidden": [32, 32]}})
    with pytest.raises(
        ConfigError, match=r"reads 64 hidden features but policy.hidden is \[32, 32\]"
    ):
        build_policy(config, 3, BOX)
    with pytest.raises(IncompatibleSpaceError, match="resample_every must be an integer"):
        make_gsde(BOX, resample_every=0)
    with pytest.raises(IncompatibleSpaceError, match="'gsde' needs a float Box"):
        make_gsde(gym.spaces.Discrete(3))
