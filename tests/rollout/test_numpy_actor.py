"""The numpy rollout mirror equals the TensorFlow policy."""

from __future__ import annotations

import pickle

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.rollout.numpy_actor import NumpyActor, can_mirror, read_variable
from trpo_tf.rollout.numpy_policy import SnapshotPolicy


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Discrete(5), gym.spaces.Box(-2.0, 2.0, (3,), np.float32)],
    ids=["categorical", "diag_gaussian"],
)
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "silu"])
def test_numpy_actor_matches_policy(space: gym.Space, activation: str) -> None:
    config = experiment_from_dict({"policy": {"activation": activation, "hidden": [16, 8]}})
    policy = build_policy(config, 4, space)
    # Non-trivial weights so that every layer matters.
    for variable in policy.policy_variables:
        variable.assign(np.random.default_rng(1).normal(size=variable.shape) * 0.5)
    assert can_mirror(policy)
    actor = NumpyActor(policy, seed=0)
    obs = np.random.default_rng(2).normal(size=(64, 4)).astype(np.float32)
    actions, log_prob, params = actor.sample(obs)
    expected_params = policy.dist_params(obs).numpy()
    np.testing.assert_allclose(params, expected_params, rtol=1e-5, atol=1e-5)
    expected_log_prob = np.asarray(policy.distribution(expected_params).log_prob(actions))
    np.testing.assert_allclose(log_prob, expected_log_prob, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        actor.mode(obs), np.asarray(policy.head.mode(expected_params)), rtol=1e-5, atol=1e-5
    )


def test_numpy_actor_follows_weight_changes_after_sync() -> None:
    policy = build_policy(experiment_from_dict({}), 3, gym.spaces.Box(-1.0, 1.0, (2,)))
    actor = NumpyActor(policy, seed=0)
    obs = np.ones((2, 3), np.float32)
    before = actor.mode(obs)
    policy.head.log_std.assign([0.5, -0.5])
    policy.network.layers[-1].bias.assign([1.0, -1.0])
    np.testing.assert_array_equal(actor.mode(obs), before)  # not synced yet
    actor.sync()
    np.testing.assert_allclose(actor.mode(obs), before + np.array([1.0, -1.0]), atol=1e-6)
    _, _, params = actor.sample(obs)
    np.testing.assert_allclose(params[:, 2:], [[0.5, -0.5]] * 2)


def test_read_variable_returns_the_value_at_the_time_of_the_read() -> None:
    keras_variable = keras.Variable(np.arange(6.0).reshape(2, 3), dtype="float32")
    tf_variable = tf.Variable([1.0, 2.0], dtype=tf.float64)
    assign_in_graph = tf.function(lambda v, x: v.assign(x), autograph=False)
    for variable, value in ((keras_variable, np.arange(6.0).reshape(2, 3)), (tf_variable, [1, 2])):
        read = read_variable(variable)
        assert read.dtype == tf.as_dtype(variable.dtype).as_numpy_dtype
        np.testing.assert_array_equal(read, value)
        # Later writes, eager or compiled (as the TRPO step writes θ), leave the read alone.
        variable.assign(np.full(read.shape, 7.0))
        resource = variable.value if isinstance(variable, keras.Variable) else variable
        assign_in_graph(resource, np.full(read.shape, 9.0, read.dtype))
        np.testing.assert_array_equal(read, value)
        np.testing.assert_array_equal(read_variable(variable), np.full(read.shape, 9.0))


def test_sampling_statistics_match_the_distribution() -> None:
    policy = build_policy(experiment_from_dict({}), 2, gym.spaces.Discrete(3))
    policy.network.layers[-1].bias.assign([1.0, 0.0, -1.0])
    actor = NumpyActor(policy, seed=0)
    actions, _, _ = actor.sample(np.zeros((20000, 2), np.float32))
    frequencies = np.bincount(actions, minlength=3) / actions.size
    expected = np.exp([1.0, 0.0, -1.0]) / np.exp([1.0, 0.0, -1.0]).sum()
    np.testing.assert_allclose(frequencies, expected, atol=0.015)


def test_worker_snapshot_of_a_gsde_policy_acts_like_the_learner_mirror() -> None:
    # Rollout workers rebuild β from a pickled snapshot: the features-passing output
    # layer and the held-noise sampler must survive it.
    config = experiment_from_dict(
        {
            "policy": {
                "distribution": "gsde",
                "hidden": [16, 8],
                "distribution_kwargs": {"num_features": 8},
            }
        }
    )
    policy = build_policy(config, 4, gym.spaces.Box(-2.0, 2.0, (2,), np.float32))
    for variable in policy.policy_variables:
        variable.assign(np.random.default_rng(3).normal(size=variable.shape) * 0.3)
    actor = NumpyActor(policy, seed=0)
    worker = SnapshotPolicy(pickle.loads(pickle.dumps(actor.snapshot().with_version(1, None))))
    obs = np.random.default_rng(4).normal(size=(3, 4)).astype(np.float32)
    actions, log_prob, params = worker.sample(obs, np.random.default_rng(5))
    np.testing.assert_allclose(params, policy.dist_params(obs).numpy(), rtol=1e-5, atol=1e-5)
    expected = np.asarray(policy.distribution(params).log_prob(actions))
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)
