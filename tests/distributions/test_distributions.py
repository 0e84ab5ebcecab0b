"""Built-in distribution heads against closed forms in numpy (float64)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.distributions import (
    CategoricalHead,
    DiagGaussianHead,
    auto_distribution_name,
    make_categorical,
    make_diag_gaussian,
    make_state_std_gaussian,
)
from trpo_tf.errors import IncompatibleSpaceError, TrpoTfError
from trpo_tf.interfaces import DistributionHead
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy

RNG = np.random.default_rng(0)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _gaussian(d: int = 3, log_std_init: float = 0.0) -> DiagGaussianHead:
    space = gym.spaces.Box(-1.0, 1.0, (d,), np.float64)
    return make_diag_gaussian(space, log_std_init=log_std_init, dtype=tf.float64)


def _gaussian_params(batch: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.normal(size=(batch, d)), rng.normal(scale=0.5, size=(batch, d))], axis=1
    )


# --- categorical -------------------------------------------------------------


def test_categorical_kl_matches_closed_form() -> None:
    head = make_categorical(gym.spaces.Discrete(5), dtype=tf.float64)
    p, q = RNG.normal(size=(6, 5)) * 2, RNG.normal(size=(6, 5)) * 2
    kl = head.distribution(tf.constant(p)).kl_divergence(head.distribution(tf.constant(q)))
    log_p, log_q = _log_softmax(p), _log_softmax(q)
    expected = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)
    assert kl.dtype == tf.float64
    assert kl.shape == (6,)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-12, atol=1e-14)
    assert np.all(expected > 0)


def test_categorical_log_prob_entropy_and_self_kl() -> None:
    head = make_categorical(gym.spaces.Discrete(4), dtype=tf.float64)
    logits = RNG.normal(size=(8, 4))
    actions = RNG.integers(0, 4, size=8).astype(np.int32)
    dist = head.distribution(tf.constant(logits))
    log_p = _log_softmax(logits)
    np.testing.assert_allclose(
        dist.log_prob(tf.constant(actions)).numpy(), log_p[np.arange(8), actions], rtol=1e-13
    )
    np.testing.assert_allclose(
        dist.entropy().numpy(), -np.sum(np.exp(log_p) * log_p, axis=-1), rtol=1e-12
    )
    np.testing.assert_allclose(dist.kl_divergence(dist).numpy(), np.zeros(8), atol=1e-14)


def test_categorical_mode_and_sample_shapes() -> None:
    head = make_categorical(gym.spaces.Discrete(4), dtype=tf.float64)
    assert isinstance(head, CategoricalHead)
    assert isinstance(head, DistributionHead)
    assert (head.num_inputs, head.param_dim, head.action_shape) == (4, 4, ())
    assert head.action_dtype == tf.int32
    logits = RNG.normal(size=(5, 4))
    mode = head.mode(tf.constant(logits))
    assert mode.shape == (5,)
    assert mode.dtype == tf.int32
    assert np.array_equal(mode.numpy(), logits.argmax(axis=-1))
    sample = head.distribution(tf.constant(logits)).sample(seed=1)
    assert sample.shape == (5,)
    assert sample.dtype == tf.int32
    assert head.trainable_variables == ()
    assert dict(head.diagnostics(tf.constant(logits))) == {}


def test_categorical_to_env_action_adds_start() -> None:
    head = make_categorical(gym.spaces.Discrete(4, start=3))
    assert head.num_inputs == 4
    env_actions = head.to_env_action(np.array([0, 1, 3], dtype=np.int32))
    assert np.array_equal(env_actions, [3, 4, 6])
    space = gym.spaces.Discrete(4, start=3)
    assert all(space.contains(int(a)) for a in env_actions)
    plain = make_categorical(gym.spaces.Discrete(2))
    assert np.array_equal(plain.to_env_action(np.array([0, 1])), [0, 1])


# --- diagonal Gaussian -------------------------------------------------------


def test_gaussian_kl_matches_closed_form() -> None:
    d = 3
    head = _gaussian(d)
    p, q = _gaussian_params(6, d, 1), _gaussian_params(6, d, 2)
    kl = head.distribution(tf.constant(p)).kl_divergence(head.distribution(tf.constant(q)))
    mu_p, ls_p, mu_q, ls_q = p[:, :d], p[:, d:], q[:, :d], q[:, d:]
    sp, sq = np.exp(ls_p), np.exp(ls_q)
    expected = np.sum(np.log(sq / sp) + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - 0.5, axis=-1)
    assert kl.dtype == tf.float64
    assert kl.shape == (6,)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        head.distribution(tf.constant(p)).kl_divergence(head.distribution(tf.constant(p))),
        np.zeros(6),
        atol=1e-14,
    )


def test_gaussian_log_prob_matches_formula() -> None:
    d = 2
    head = _gaussian(d)
    params = _gaussian_params(7, d, 3)
    actions = RNG.normal(size=(7, d))
    mu, log_std = params[:, :d], params[:, d:]
    expected = np.sum(
        -0.5 * ((actions - mu) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi),
        axis=-1,
    )
    log_prob = head.distribution(tf.constant(params)).log_prob(tf.constant(actions))
    assert log_prob.shape == (7,)
    np.testing.assert_allclose(log_prob.numpy(), expected, rtol=1e-13)


def test_gaussian_params_mode_and_log_std_variable() -> None:
    d = 3
    head = _gaussian(d, log_std_init=-0.5)
    assert isinstance(head, DistributionHead)
    assert (head.num_inputs, head.param_dim, head.action_shape) == (d, 2 * d, (d,))
    assert head.action_dtype == tf.float64
    (log_std,) = head.trainable_variables
    assert log_std is head.log_std
    assert log_std.trainable
    assert log_std.dtype == tf.float64
    np.testing.assert_array_equal(log_std.numpy(), np.full(d, -0.5))
    means = RNG.normal(size=(4, d))
    params = head.params(tf.constant(means)).numpy()
    assert params.shape == (4, 2 * d)
    np.testing.assert_array_equal(params[:, :d], means)
    np.testing.assert_array_equal(params[:, d:], np.full((4, d), -0.5))
    mode = head.mode(tf.constant(params))
    assert mode.shape == (4, d)
    np.testing.assert_array_equal(mode.numpy(), means)
    sample = head.distribution(tf.constant(params)).sample(seed=2)
    assert sample.shape == (4, d)
    np.testing.assert_allclose(
        head.diagnostics(tf.constant(params))["policy_std"].numpy(), np.exp(-0.5)
    )


def test_gaussian_policy_std_is_that_of_the_params_not_of_the_current_log_std() -> None:
    # The trainer reports the diagnostics of π_old's params after θ (log_std included)
    # may have moved; every head must read them from params, like entropy.
    d = 3
    head = _gaussian(d, log_std_init=-0.5)
    params = _gaussian_params(4, d, seed=3)
    expected = np.mean(np.exp(params[:, d:]))
    head.log_std.assign([1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        head.diagnostics(tf.constant(params))["policy_std"].numpy(), expected, rtol=1e-12
    )


def test_gaussian_log_std_receives_gradients_through_policy() -> None:
    head = _gaussian(2)
    network = build_mlp(3, [4], head.num_inputs, dtype="float64")
    policy = Policy(network, head)
    assert any(v is head.log_std for v in policy.policy_variables)
    obs = tf.constant(RNG.normal(size=(5, 3)))
    actions = tf.constant(RNG.normal(size=(5, 2)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(policy.distribution(policy.dist_params(obs)).log_prob(actions))
    grads = tape.gradient(loss, policy.policy_variables)
    assert grads[-1] is not None
    assert np.abs(grads[-1].numpy()).max() > 0


def test_gaussian_to_env_action_clips_to_box() -> None:
    space = gym.spaces.Box(
        np.array([-1.0, -2.0], np.float32), np.array([1.0, 0.5], np.float32), dtype=np.float32
    )
    head = make_diag_gaussian(space)
    raw = np.array([[5.0, -5.0], [0.3, 0.1], [-3.0, 3.0]], dtype=np.float32)
    env_actions = head.to_env_action(raw)
    expected = np.array([[1.0, -2.0], [raw[1, 0], raw[1, 1]], [-1.0, 0.5]])
    np.testing.assert_array_equal(env_actions, expected)
    assert all(space.contains(a.astype(np.float32)) for a in env_actions)
    # the stored sample is not modified in place
    assert raw[0, 0] == 5.0


def test_gaussian_multidimensional_box_is_flattened_and_reshaped() -> None:
    low = -np.arange(1.0, 7.0).reshape(2, 3)
    space = gym.spaces.Box(low, -low, dtype=np.float64)
    head = make_diag_gaussian(space, dtype=tf.float64)
    assert head.action_shape == (6,)
    assert head.param_dim == 12
    raw = np.full((4, 6), 100.0)
    env_actions = head.to_env_action(raw)
    assert env_actions.shape == (4, 2, 3)
    np.testing.assert_array_equal(env_actions[0], -low)


# --- incompatible spaces and auto --------------------------------------------


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Box(-1.0, 1.0, (2,)), gym.spaces.MultiBinary(3), gym.spaces.MultiDiscrete([2, 3])],
)
def test_categorical_rejects_other_spaces(space: gym.Space) -> None:
    with pytest.raises(IncompatibleSpaceError, match="categorical"):
        make_categorical(space)


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Discrete(3),
        gym.spaces.MultiBinary(3),
        gym.spaces.Box(0, 10, (2,), dtype=np.int64),
    ],
)
def test_diag_gaussian_rejects_other_spaces(space: gym.Space) -> None:
    with pytest.raises(IncompatibleSpaceError, match="diag_gaussian") as info:
        make_diag_gaussian(space)
    assert isinstance(info.value, TrpoTfError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["0.5", None, True])
def test_diag_gaussian_rejects_non_numeric_log_std_init(bad) -> None:
    with pytest.raises(IncompatibleSpaceError, match="log_std_init"):
        make_diag_gaussian(gym.spaces.Box(-1.0, 1.0, (2,)), log_std_init=bad)


def test_auto_picks_builtin_by_space() -> None:
    assert auto_distribution_name(gym.spaces.Discrete(3)) == "categorical"
    assert auto_distribution_name(gym.spaces.Discrete(3, start=-1)) == "categorical"
    assert auto_distribution_name(gym.spaces.Box(-1.0, 1.0, (4,))) == "diag_gaussian"
    assert auto_distribution_name(gym.spaces.MultiDiscrete([2, 3])) == "multi_categorical"
    assert auto_distribution_name(gym.spaces.MultiBinary(3)) == "bernoulli"


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
        gym.spaces.Dict({"a": gym.spaces.Discrete(2)}),
    ],
)
def test_auto_rejects_unsupported_spaces(space: gym.Space) -> None:
    with pytest.raises(IncompatibleSpaceError, match="auto"):
        auto_distribution_name(space)


def test_state_std_gaussian_log_std_follows_the_network_within_bounds() -> None:
    head = make_state_std_gaussian(
        gym.spaces.Box(-1.0, 1.0, (2,), np.float32), log_std_init=0.5, log_std_max=1.0
    )
    assert head.num_inputs == 4 and head.param_dim == 4 and head.trainable_variables == ()
    net_out = tf.constant([[0.1, -0.2, 0.0, -0.3], [0.4, 0.5, 9.0, -9.0]])
    params = head.params(net_out).numpy()
    np.testing.assert_allclose(params[:, :2], [[0.1, -0.2], [0.4, 0.5]])
    # log σ = clip(0.5 + ℓ, -5, 1): two states, two different stds
    np.testing.assert_allclose(params[:, 2:], [[0.5, 0.2], [1.0, -5.0]], rtol=1e-6)
    distribution = head.distribution(params)
    np.testing.assert_allclose(distribution.stddev().numpy(), np.exp(params[:, 2:]), rtol=1e-6)


def test_state_std_gaussian_numpy_sampler_matches_the_distribution() -> None:
    head = make_state_std_gaussian(gym.spaces.Box(-2.0, 2.0, (3,), np.float32), log_std_init=-0.5)
    net_out = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    actions, log_prob, params = head.numpy_sampler().sample(net_out, np.random.default_rng(1))
    np.testing.assert_allclose(params, head.params(tf.constant(net_out)).numpy(), rtol=1e-6)
    expected = head.distribution(tf.constant(params)).log_prob(actions).numpy()
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
    np.testing.assert_array_equal(head.numpy_sampler().mode(net_out), net_out[:, :3])


def test_state_std_gaussian_rejects_bad_settings() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(IncompatibleSpaceError, match="gaussian_state_std.*float Box"):
        make_state_std_gaussian(gym.spaces.Discrete(3))
    with pytest.raises(IncompatibleSpaceError, match="log_std_min <= log_std_init"):
        make_state_std_gaussian(box, log_std_init=3.0)
    with pytest.raises(IncompatibleSpaceError, match="log_std_max must be a number"):
        make_state_std_gaussian(box, log_std_max="big")
