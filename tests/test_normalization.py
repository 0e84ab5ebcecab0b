"""Running statistics and the observation/reward normalizers (float64 oracles)."""

from __future__ import annotations

import numpy as np
import pytest

from trpo_tf.errors import NormalizerOverflowError
from trpo_tf.normalization import (
    ObservationNormalizer,
    RewardNormalizer,
    RunningMeanStd,
    load_normalizer_state,
    normalizer_state,
)

BATCH_SIZES = (1, 7, 50, 3, 128, 2)


def _batches(seed: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 5.0, size=shape)
    offset = rng.normal(0.0, 10.0, size=shape)
    return [offset + scale * rng.normal(size=(n, *shape)) for n in BATCH_SIZES]


@pytest.mark.parametrize("shape", [(), (3,)])
def test_running_mean_std_matches_numpy_over_concatenated_batches(shape):
    stats = RunningMeanStd(shape)
    batches = _batches(0, shape)
    for batch in batches:
        stats.update(batch)
    data = np.concatenate(batches)
    n = data.shape[0]
    assert stats.mean.dtype == stats.var.dtype == np.float64
    assert stats.mean.shape == stats.var.shape == shape
    # The ε-count prior (mean 0, var 1, count 1e-4) shifts the result by about
    # 1e-4 · (1 + mean² / var) / n relative.
    np.testing.assert_allclose(stats.mean, data.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, data.var(axis=0), rtol=1e-3)
    # Exactly: the prior is one more (fractional) sample at mean 0 with variance 1.
    eps = 1e-4
    total = n + eps
    mean = data.sum(axis=0) / total
    data_mean = data.mean(axis=0)
    m2 = eps * 1.0 + ((data - data_mean) ** 2).sum(axis=0) + data_mean**2 * eps * n / total
    np.testing.assert_allclose(stats.mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.var, m2 / total, rtol=1e-11)
    assert stats.count == pytest.approx(total, rel=1e-15)


def test_running_mean_std_is_order_independent():
    forward, backward = RunningMeanStd((3,)), RunningMeanStd((3,))
    batches = _batches(1, (3,))
    for batch in batches:
        forward.update(batch)
    for batch in reversed(batches):
        backward.update(batch)
    np.testing.assert_allclose(forward.mean, backward.mean, rtol=1e-12)
    np.testing.assert_allclose(forward.var, backward.var, rtol=1e-12)


def test_disabled_observation_normalizer_is_float32_identity():
    normalizer = ObservationNormalizer((3,), enabled=False)
    observations = np.random.default_rng(2).normal(100.0, 50.0, size=(5, 3))
    out = normalizer(observations, update=True)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, observations.astype(np.float32))
    # Nothing was learned while disabled.
    np.testing.assert_array_equal(normalizer.stats.mean, np.zeros(3))
    np.testing.assert_array_equal(normalizer.stats.var, np.ones(3))


def test_enabled_observation_normalizer_standardizes_and_clips():
    normalizer = ObservationNormalizer((3,), enabled=True, clip=5.0)
    rng = np.random.default_rng(3)
    for batch in _batches(3, (3,)):
        out = normalizer(batch, update=True)
        assert out.dtype == np.float32
    mean, var = normalizer.stats.mean, normalizer.stats.var
    probe = mean + np.sqrt(var) * rng.normal(size=(200, 3))
    probe[0] = mean + 1e3 * np.sqrt(var)
    probe[1] = mean - 1e3 * np.sqrt(var)
    out = normalizer(probe)  # no update
    np.testing.assert_array_equal(normalizer.stats.mean, mean)
    expected = np.clip((probe - mean) / np.sqrt(var + normalizer.epsilon), -5.0, 5.0)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(out).max() <= 5.0
    np.testing.assert_array_equal(out[0], 5.0)
    np.testing.assert_array_equal(out[1], -5.0)
    inside = np.abs(expected[2:]) < 5.0
    assert inside.mean() > 0.9


def test_reward_normalizer_keeps_sign_and_scales_by_return_std():
    gamma = 0.9
    normalizer = RewardNormalizer(n_envs=2, gamma=gamma, enabled=True)
    rng = np.random.default_rng(4)
    returns = np.zeros(2)
    stats = RunningMeanStd(())
    for _ in range(30):
        rewards = np.array([1.0, -1.0]) * rng.uniform(0.5, 3.0, size=2)
        out = normalizer(rewards, np.zeros(2, bool))
        assert out.dtype == np.float32
        assert out[0] > 0 > out[1]
        returns = returns * gamma + rewards
        stats.update(returns)
        expected = np.clip(rewards / np.sqrt(stats.var + 1e-8), -10.0, 10.0)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    np.testing.assert_allclose(normalizer.returns, returns, rtol=1e-12)


def test_reward_normalizer_resets_the_return_of_finished_episodes():
    normalizer = RewardNormalizer(n_envs=3, gamma=0.5, enabled=True)
    normalizer(np.array([1.0, 2.0, 3.0]), np.zeros(3, bool))
    normalizer(np.array([1.0, 1.0, 1.0]), np.array([False, True, False]))
    # Env 1's episode ended on that step: its running return starts again from 0.
    np.testing.assert_allclose(normalizer.returns, [1.5, 0.0, 2.5])
    normalizer(np.array([2.0, 2.0, 2.0]), np.zeros(3, bool))
    np.testing.assert_allclose(normalizer.returns, [2.75, 2.0, 3.25])


def test_disabled_reward_normalizer_is_float32_identity():
    normalizer = RewardNormalizer(n_envs=2, gamma=0.99, enabled=False)
    rewards = np.array([3.5, -7.25])
    out = normalizer(rewards, np.array([True, False]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, rewards.astype(np.float32))
    np.testing.assert_array_equal(normalizer.returns, 0.0)


def test_normalizer_state_round_trips_through_npz(tmp_path):
    obs = ObservationNormalizer((4,), enabled=True, clip=7.0)
    reward = RewardNormalizer(n_envs=2, gamma=0.99, enabled=True)
    rng = np.random.default_rng(5)
    for batch in _batches(5, (4,)):
        obs(batch, update=True)
    for _ in range(10):
        reward(rng.normal(size=2), rng.uniform(size=2) < 0.2)
    path = tmp_path / "normalizer.npz"
    np.savez(path, **normalizer_state(obs, reward))

    fresh_obs = ObservationNormalizer((4,), enabled=True, clip=7.0)
    fresh_reward = RewardNormalizer(n_envs=2, gamma=0.99, enabled=True)
    with np.load(path) as state:
        load_normalizer_state(dict(state), fresh_obs, fresh_reward)
        assert bool(state["obs_enabled"]) is True
        assert float(state["obs_clip"]) == 7.0

    for name in ("mean", "var"):
        np.testing.assert_array_equal(getattr(fresh_obs.stats, name), getattr(obs.stats, name))
        np.testing.assert_array_equal(
            getattr(fresh_reward.stats, name), getattr(reward.stats, name)
        )
    assert fresh_obs.stats.count == obs.stats.count
    assert fresh_reward.stats.count == reward.stats.count
    np.testing.assert_array_equal(fresh_reward.returns, reward.returns)
    probe = rng.normal(size=(6, 4)) * 20
    np.testing.assert_array_equal(fresh_obs(probe), obs(probe))
    # Loading without a reward normalizer (evaluation) restores the observation stats only.
    eval_obs = ObservationNormalizer((4,), enabled=True, clip=7.0)
    load_normalizer_state(normalizer_state(obs, reward), eval_obs, None)
    np.testing.assert_array_equal(eval_obs(probe), obs(probe))


@pytest.mark.parametrize("batch_size", [1, 2, 7, 8, 19])
def test_scalar_statistics_match_the_array_path_bit_for_bit(batch_size):
    # Scalar statistics (the reward's) fold small batches in with Python floats; a
    # one-element shape takes the numpy path. Both must give the same bits.
    scalar, vector = RunningMeanStd(()), RunningMeanStd((1,))
    rng = np.random.default_rng(batch_size)
    for _ in range(200):
        batch = rng.normal(size=batch_size) * 10.0 ** rng.uniform(-3, 4)
        scalar.update(batch)
        vector.update(batch[:, None])
        assert scalar.mean == vector.mean[0] and scalar.var == vector.var[0]
        assert scalar.count == vector.count
    assert scalar.mean.dtype == scalar.var.dtype == np.float64


def test_observation_normalizer_folds_a_batch_in_before_normalizing_it():
    normalizer = ObservationNormalizer((2,), enabled=True)
    batch = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    out = normalizer(batch, update=True)
    stats = RunningMeanStd((2,))
    stats.update(batch)
    expected = (batch - stats.mean) / np.sqrt(stats.var + normalizer.epsilon)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    # With the prior statistics (0, 1) instead, the first row would stay far from 0.
    assert np.abs(out).max() < 2.0


@pytest.mark.parametrize("shape", [(), (2,)])
def test_running_statistics_overflow_is_an_error_and_keeps_them(shape):
    stats = RunningMeanStd(shape)
    stats.update(np.ones((3, *shape)))
    before = {k: np.copy(v) for k, v in stats.state().items()}
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(
            NormalizerOverflowError,
            match=r"^running variance overflowed float64 on values up to 1e\+200$",
        ),
    ):
        stats.update(
            np.full((3, *shape), 1e200) * np.array([1, -1, 1]).reshape(3, *[1] * len(shape))
        )
    for key, value in stats.state().items():
        np.testing.assert_array_equal(value, before[key])


def test_observation_normalizer_overflow_names_it_and_the_fix():
    normalizer = ObservationNormalizer((2,), enabled=True)
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(NormalizerOverflowError) as raised,
    ):
        normalizer(np.array([[1e300, 0.0], [-1e300, 0.0]]), update=True)
    message = str(raised.value)
    assert message.startswith("the observation normalizer's running variance overflowed")
    assert "env.normalize_obs: false" in message


@pytest.mark.parametrize(
    ("gamma", "reward", "what"),
    [(1.5, 1.0, "discounted return overflowed float64"), (0.5, 1.7e308, "running mean")],
)
def test_reward_normalizer_overflow_names_the_statistic_and_keeps_state(gamma, reward, what):
    normalizer = RewardNormalizer(n_envs=2, gamma=gamma, enabled=True)
    normalizer(np.array([1.0, 2.0]), np.zeros(2, bool))
    if gamma > 1:  # the return itself grows past float64
        normalizer.returns[:] = 1.7e308
    returns, var = normalizer.returns.copy(), float(normalizer.stats.var)
    with (
        np.errstate(over="ignore", invalid="ignore"),
        pytest.raises(NormalizerOverflowError) as raised,
    ):
        normalizer(np.array([reward, reward]), np.zeros(2, bool))
    message = str(raised.value)
    assert message.startswith(f"the reward normalizer's {what}")
    assert f"(rewards up to {reward:.4g})" in message
    assert "scale the rewards down" in message
    np.testing.assert_array_equal(normalizer.returns, returns)
    assert float(normalizer.stats.var) == var
