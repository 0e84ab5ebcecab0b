"""V-trace against the conformance kit and a naive per-step oracle."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from trpo_tf_vtrace import VTraceEstimator, make_vtrace

from trpo_tf import registry
from trpo_tf.errors import ConfigError
from trpo_tf.testing import check_advantage_estimator, random_advantage_inputs


def _oracle(x, gamma: float, lam: float, rho_bar: float, c_bar: float):
    """Textbook sums: v_s = V_s + Σ_t γ^(t−s) λ^(t−s) (Π_{s≤i<t} c_i) ρ_t δ_t within the
    episode, Â_s = δ_s + Σ_{t>s} (γλ)^(t−s) (Π_{s<i<t} c_i) ρ_t δ_t."""
    T, N = x.rewards.shape
    ratio = np.exp(x.log_rho.astype(np.float64))
    rho, c = np.minimum(rho_bar, ratio), np.minimum(c_bar, ratio)
    delta = x.rewards + gamma * (1 - x.terminated) * x.next_values - x.values
    advantages, targets = np.zeros((T, N)), np.zeros((T, N))
    for env in range(N):
        for s in range(T):
            end = s
            while end < T - 1 and not x.episode_end[end, env]:
                end += 1
            correction, advantage = 0.0, delta[s, env]
            for t in range(s, end + 1):
                discount = (gamma * lam) ** (t - s)
                correction += discount * np.prod(c[s:t, env]) * rho[t, env] * delta[t, env]
                if t > s:
                    trace = np.prod(c[s + 1 : t, env])
                    advantage += discount * trace * rho[t, env] * delta[t, env]
            targets[s, env] = x.values[s, env] + correction
            advantages[s, env] = advantage
    return advantages, targets


def test_registered_under_trpo_tf_advantages() -> None:
    assert "vtrace" in registry.names(registry.ADVANTAGES)
    assert registry.load(registry.ADVANTAGES, "vtrace") is make_vtrace


@pytest.mark.parametrize(
    ("gamma", "lam", "kwargs"),
    [(0.99, 0.95, {}), (0.9, 1.0, {}), (0.97, 0.5, {"rho_bar": 2.0, "c_bar": 3.0})],
)
def test_conforms_and_equals_gae_on_policy(gamma, lam, kwargs) -> None:
    # The kit's default reference: with log_rho = 0 both outputs equal GAE(γ, λ).
    estimator = check_advantage_estimator(make_vtrace, gamma=gamma, lam=lam, **kwargs)
    assert isinstance(estimator, VTraceEstimator)


def test_truncation_below_one_is_not_gae_on_policy() -> None:
    with pytest.raises(AssertionError, match="equal GAE"):
        check_advantage_estimator(make_vtrace, rho_bar=0.5)
    check_advantage_estimator(make_vtrace, rho_bar=0.5, on_policy_reference=None)


@pytest.mark.parametrize(
    ("rho_bar", "c_bar"), [(1.0, 1.0), (0.5, 0.8), (2.0, 0.3), (math.inf, math.inf)]
)
@pytest.mark.parametrize("lam", [0.9, 1.0])
def test_matches_naive_oracle_off_policy(rho_bar, c_bar, lam) -> None:
    x = random_advantage_inputs(T=14, N=4, seed=3, log_rho_scale=0.8)
    out = make_vtrace(gamma=0.95, lam=lam, rho_bar=rho_bar, c_bar=c_bar)(x)
    advantages, targets = _oracle(x, 0.95, lam, rho_bar, c_bar)
    np.testing.assert_allclose(out.advantages, advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.value_targets, targets, rtol=1e-5, atol=1e-5)


def test_lambda_one_is_impala_advantage_without_rho() -> None:
    gamma = 0.9
    x = random_advantage_inputs(T=12, N=3, seed=5, log_rho_scale=0.5)
    out = make_vtrace(gamma=gamma, lam=1.0)(x)
    inside = x.episode_end[:-1] == 0  # steps whose successor is in the same episode
    impala = x.rewards[:-1] + gamma * out.value_targets[1:] - x.values[:-1]
    np.testing.assert_allclose(out.advantages[:-1][inside], impala[inside], rtol=1e-5, atol=1e-5)


def test_large_ratios_are_truncated() -> None:
    x = random_advantage_inputs(T=10, N=2, seed=7)
    huge = dataclasses.replace(x, log_rho=np.full_like(x.log_rho, 5.0))
    at_cap = dataclasses.replace(x, log_rho=np.zeros_like(x.log_rho))
    estimator = make_vtrace(gamma=0.95, lam=0.9)  # ρ̄ = c̄ = 1
    np.testing.assert_allclose(estimator(huge).value_targets, estimator(at_cap).value_targets)


@pytest.mark.parametrize("bad", [0, -1.0, "1", True, float("nan")])
def test_rejects_bad_truncation_levels(bad) -> None:
    with pytest.raises(ConfigError, match="rho_bar"):
        make_vtrace(rho_bar=bad)
    with pytest.raises(ConfigError, match="c_bar"):
        make_vtrace(c_bar=bad)
