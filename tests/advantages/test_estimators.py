"""GAE and Monte Carlo estimators against plain per-episode Python loops."""

from __future__ import annotations

import numpy as np
import pytest

from trpo_tf.advantages import make_gae, make_mc
from trpo_tf.advantages.gae import (
    PYTHON_LOOP_MAX_ENVS,
    discounted_reverse_sum,
    reverse_sum_by_env,
    reverse_sum_by_step,
)
from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import AdvantageInputs


def _episode_inputs(seed: int = 0, T: int = 12, N: int = 3) -> AdvantageInputs:
    """Random rollout with terminations and truncations in several envs."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, N), np.float32)
    truncated = np.zeros((T, N), np.float32)
    terminated[3, 0] = 1.0
    truncated[7, 0] = 1.0
    truncated[5, 1] = 1.0
    terminated[11, 1] = 1.0  # terminal on the very last step
    terminated[2, 2] = 1.0
    truncated[9, 2] = 1.0
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = np.concatenate([values[1:], rng.normal(size=(1, N))]).astype(np.float32)
    # A truncated step bootstraps through V(final observation), not V(reset obs).
    final_values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = np.where(truncated > 0, final_values, next_values).astype(np.float32)
    return AdvantageInputs(
        rewards=rng.normal(size=(T, N)).astype(np.float32),
        values=values,
        next_values=next_values,
        terminated=terminated,
        episode_end=np.maximum(terminated, truncated),
        log_rho=np.zeros((T, N), np.float32),
    )


def _gae_oracle(x: AdvantageInputs, gamma: float, lam: float) -> np.ndarray:
    T, N = x.rewards.shape
    out = np.zeros((T, N))
    for env in range(N):
        for t in range(T):
            # Sum (γλ)^k δ_{t+k} until the episode (or the rollout) ends.
            total, weight = 0.0, 1.0
            for k in range(t, T):
                bootstrap = 0.0 if x.terminated[k, env] else gamma * x.next_values[k, env]
                delta = x.rewards[k, env] + bootstrap - x.values[k, env]
                total += weight * delta
                if x.episode_end[k, env]:
                    break
                weight *= gamma * lam
            out[t, env] = total
    return out


def _mc_oracle(x: AdvantageInputs, gamma: float) -> np.ndarray:
    T, N = x.rewards.shape
    returns = np.zeros((T, N))
    for env in range(N):
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                total += discount * x.rewards[k, env]
                if x.terminated[k, env]:
                    break
                if x.episode_end[k, env] or k == T - 1:
                    total += discount * gamma * x.next_values[k, env]
                    break
                discount *= gamma
            returns[t, env] = total
    return returns


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 0.0), (0.97, 1.0)])
def test_gae_matches_plain_loop(gamma: float, lam: float) -> None:
    inputs = _episode_inputs()
    result = make_gae(gamma=gamma, lam=lam)(inputs)
    expected = _gae_oracle(inputs, gamma, lam)
    np.testing.assert_allclose(result.advantages, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.value_targets, expected + inputs.values, atol=1e-5)


def test_reverse_sum_loops_agree_bitwise_on_both_sides_of_the_threshold() -> None:
    rng = np.random.default_rng(5)
    for n_envs in (1, PYTHON_LOOP_MAX_ENVS, PYTHON_LOOP_MAX_ENVS + 1):
        deltas = rng.normal(size=(300, n_envs)).astype(np.float32)
        ends = rng.random((300, n_envs)) < 0.02
        carry = 0.97 * (1.0 - ends.astype(np.float64))
        by_env = reverse_sum_by_env(deltas.astype(np.float64), carry)
        by_step = reverse_sum_by_step(deltas.astype(np.float64), carry)
        assert np.array_equal(by_env, by_step)
        result = discounted_reverse_sum(deltas, 0.97, ends)
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, by_step.astype(np.float32))
        # Spot-check against the definition: x_t = δ_t + 0.97 (1 − end_t) x_{t+1}.
        t = 100
        expected = deltas[t] + 0.97 * (1.0 - ends[t]) * by_step[t + 1]
        np.testing.assert_allclose(result[t], expected, rtol=1e-6)


def test_gae_truncation_bootstraps_but_termination_does_not() -> None:
    inputs = _episode_inputs()
    out = make_gae(gamma=0.9, lam=0.8)(inputs)
    # Terminated at t=3 in env 0: Â = r − V, no bootstrap term.
    assert out.advantages[3, 0] == pytest.approx(inputs.rewards[3, 0] - inputs.values[3, 0])
    # Truncated at t=7 in env 0: Â = r + γ V(final obs) − V.
    expected = inputs.rewards[7, 0] + 0.9 * inputs.next_values[7, 0] - inputs.values[7, 0]
    assert out.advantages[7, 0] == pytest.approx(expected, rel=1e-5)


def test_mc_matches_plain_loop_and_equals_gae_lambda_one() -> None:
    inputs = _episode_inputs(seed=3)
    mc = make_mc(gamma=0.95)(inputs)
    expected = _mc_oracle(inputs, 0.95)
    np.testing.assert_allclose(mc.value_targets, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mc.advantages, expected - inputs.values, atol=1e-5)
    gae_one = make_gae(gamma=0.95, lam=1.0)(inputs)
    np.testing.assert_allclose(mc.advantages, gae_one.advantages, atol=1e-4)


def test_unknown_estimator_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="advantage.kwargs.*rho_bar"):
        make_gae(gamma=0.99, lam=0.95, rho_bar=1.0)
