"""The learner's half of an iteration on hand-made rollouts: what reaches the update,
numerical checks before and after it, and the skip reason it reports."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict
from trpo_tf.errors import NumericalError, TrpoTfError
from trpo_tf.interfaces import AdvantageOutputs
from trpo_tf.learner import Learner, normalize_advantages
from trpo_tf.types import Rollout

T, N, OBS_DIM = 32, 2, 4


def _learner(**sections: Any) -> Learner:
    data: dict[str, Any] = {
        "env": {"id": "CartPole-v1", "n_envs": N},
        "trainer": {"steps_per_iteration": T * N, "overlap_value_fit": False},
        "value": {"minibatch_size": 32, "epochs": 1},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    config = experiment_from_dict(data)
    agent = Agent.build(config, OBS_DIM, gym.spaces.Discrete(2))
    return Learner(config, agent, T * N, OBS_DIM)


def _rollout(
    learner: Learner, iteration: int, seed: int = 0, rewards: np.ndarray | None = None
) -> Rollout:
    """T steps of N envs with actions drawn from the current π_θ (β = π_θ, version
    ``iteration``), one episode end per env."""
    rng = np.random.default_rng(seed)
    policy = learner.update.policy
    observations = rng.normal(size=(T, N, OBS_DIM)).astype(np.float32)
    params = policy.dist_params(observations.reshape(T * N, OBS_DIM))
    distribution = policy.distribution(params)
    actions = distribution.sample(seed=(seed, 1))
    log_prob = distribution.log_prob(actions).numpy().reshape(T, N)
    terminated = np.zeros((T, N), bool)
    terminated[T // 2, 0] = True
    truncated = np.zeros((T, N), bool)
    truncated[T // 3, 1] = True
    return Rollout(
        observations=observations,
        actions=actions.numpy().reshape(T, N),
        rewards=(rng.uniform(0.5, 1.5, (T, N)) if rewards is None else rewards).astype(np.float32),
        raw_rewards=np.ones((T, N), np.float32),
        terminated=terminated,
        truncated=truncated,
        final_observations=rng.normal(size=(T, N, OBS_DIM)).astype(np.float32),
        last_observations=rng.normal(size=(N, OBS_DIM)).astype(np.float32),
        behavior_log_prob=log_prob.astype(np.float32),
        behavior_params=params.numpy().reshape(T, N, -1),
        policy_version=np.full((T, N), iteration, np.int64),
        episode_returns=np.zeros(0),
        episode_lengths=np.zeros(0, np.int64),
    )


def _theta(learner: Learner) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in learner.update.policy.policy_variables]


def _phi(learner: Learner) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in learner.update.value_network.weights]


def _spy_policy_step(learner: Learner) -> list[tuple[np.ndarray, ...]]:
    """Record the arguments of every policy step (observations, actions, the surrogate's
    denominator log-probs, advantages)."""
    calls: list[tuple[np.ndarray, ...]] = []
    run = learner.update.run_policy_step

    def spy(*arguments: Any) -> Any:
        calls.append(tuple(np.array(a, copy=True) for a in arguments))
        return run(*arguments)

    learner.update.run_policy_step = spy  # type: ignore[method-assign]
    return calls


# Numerical checks --------------------------------------------------------------------


def test_non_finite_advantages_stop_before_the_update_naming_stage_and_iteration() -> None:
    learner = _learner(advantage={"normalize": False})
    rewards = np.ones((T, N))
    rewards[5, 1] = np.nan
    before = _theta(learner)
    with pytest.raises(NumericalError) as caught:
        learner.learn(_rollout(learner, 3, rewards=rewards), iteration=3)
    message = str(caught.value)
    assert message.startswith("advantages became non-finite at iteration 3 (")
    assert "advantage estimation, estimator 'gae'" in message
    assert "\n" not in message
    assert isinstance(caught.value, TrpoTfError)
    for b, a in zip(before, _theta(learner), strict=True):
        np.testing.assert_array_equal(b, a)  # the update never ran


def test_non_finite_value_targets_have_their_own_message() -> None:
    learner = _learner()
    estimator = learner.estimator

    def nan_targets(inputs: Any) -> AdvantageOutputs:
        outputs = estimator(inputs)
        targets = np.array(outputs.value_targets, copy=True)
        targets[0, 0] = np.inf
        return AdvantageOutputs(advantages=outputs.advantages, value_targets=targets)

    learner.estimator = nan_targets
    with pytest.raises(NumericalError, match=r"^value targets became non-finite at iteration 2 "):
        learner.learn(_rollout(learner, 2), iteration=2)


def test_policy_parameters_that_become_non_finite_stop_the_run() -> None:
    learner = _learner()
    run = learner.update.run_policy_step

    def corrupting_step(*arguments: Any) -> Any:
        metrics = run(*arguments)
        variable = learner.update.policy.policy_variables[0]
        variable.assign(tf.fill(variable.shape, np.float32(np.nan)))
        return metrics

    learner.update.run_policy_step = corrupting_step  # type: ignore[method-assign]
    with pytest.raises(
        NumericalError, match=r"^policy parameters became non-finite at iteration 4 \(policy step"
    ):
        learner.learn(_rollout(learner, 4), iteration=4)


@pytest.mark.parametrize("overlap", [False, True], ids=["inline", "background"])
def test_value_parameters_that_become_non_finite_stop_the_run(overlap: bool) -> None:
    # A learning rate near float32's largest value: Adam's first steps move φ by ~1e38
    # and the next predictions overflow.
    learner = _learner(
        value={"learning_rate": 1e38, "epochs": 3},
        trainer={"overlap_value_fit": overlap},
    )
    pattern = r"^value parameters became non-finite at iteration 5 \(value fit"
    with pytest.raises(NumericalError, match=pattern):
        learner.learn(_rollout(learner, 5), iteration=5)
        learner.value_fitter.wait()  # the background fit's error is raised here
    learner.value_fitter.close()


def test_finite_batches_pass_the_checks_and_report_no_skip() -> None:
    learner = _learner()
    metrics = learner.learn(_rollout(learner, 1), iteration=1)
    learner.value_fitter.wait()
    assert metrics["skip_reason"] == ""
    assert metrics["line_search_accepted"]


# Skip reasons ------------------------------------------------------------------------


def test_zero_advantages_report_the_zero_gradient_reason_as_text() -> None:
    learner = _learner(advantage={"normalize": False})
    # V_φ's predictions zeroed and rewards zero: Â = 0 everywhere.
    for variable in learner.update.value_network.weights:
        variable.assign(tf.zeros_like(variable))
    before = _theta(learner)
    metrics = learner.learn(_rollout(learner, 1, rewards=np.zeros((T, N))), iteration=1)
    assert metrics["skip_reason"] == "gradient norm ~ 0"
    assert not metrics["line_search_accepted"]
    for b, a in zip(before, _theta(learner), strict=True):
        np.testing.assert_array_equal(b, a)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_an_infinite_importance_weight_reports_a_non_finite_gradient() -> None:
    # log β(a|s) = −∞ stored for one sample (β's probability underflowed): π_θ/β = ∞.
    learner = _learner()
    rollout = _rollout(learner, 1)
    rollout.behavior_log_prob[3, 0] = -np.inf
    before = _theta(learner)
    metrics = learner.learn(rollout, iteration=1)
    assert metrics["skip_reason"] == "non-finite gradient"
    assert not np.isfinite(metrics["grad_norm"])
    for b, a in zip(before, _theta(learner), strict=True):
        np.testing.assert_array_equal(b, a)


# What reaches the update -------------------------------------------------------------


def _stale(learner: Learner, iteration: int, seed: int = 0) -> tuple[Rollout, np.ndarray]:
    """A batch collected by β two versions before π_old: log β(a|s) = log π_old(a|s) − δ
    with δ ∈ {0.4, 0} alternating. Returns it and log π_old(a|s) ``[T·N]``."""
    rollout = _rollout(learner, iteration - 2, seed=seed)
    pi_old = rollout.behavior_log_prob.reshape(-1).copy()
    shift = np.where(np.arange(T * N) % 2 == 0, 0.4, 0.0).astype(np.float32)
    return dataclasses.replace(rollout, behavior_log_prob=(pi_old - shift).reshape(T, N)), pi_old


def _surrogate_gradient_norm(
    learner: Learner, arguments: tuple[np.ndarray, ...], denominator: np.ndarray
) -> float:
    """‖∇θ mean[π_θ(a|s) / exp(denominator) · Â]‖ at the current θ."""
    observations, actions, _, advantages = arguments
    policy = learner.update.policy
    with tf.GradientTape() as tape:
        log_prob = policy.distribution(policy.dist_params(observations)).log_prob(actions)
        surrogate = tf.reduce_mean(tf.exp(log_prob - denominator) * advantages)
    gradients = tape.gradient(surrogate, policy.policy_variables)
    return float(tf.linalg.global_norm(gradients))


def test_stale_batch_surrogate_divides_by_the_stored_behavior_log_prob() -> None:
    learner = _learner()
    calls = _spy_policy_step(learner)
    theta_old = _theta(learner)
    rollout, pi_old = _stale(learner, iteration=3)
    metrics = learner.learn(rollout, iteration=3)
    ((_, _, denominator, _),) = calls
    np.testing.assert_array_equal(denominator, rollout.behavior_log_prob.reshape(-1))
    assert np.max(np.abs(denominator - pi_old)) > 0.3
    # And the step that ran was the one for that denominator: g at θ_old.
    for variable, value in zip(learner.update.policy.policy_variables, theta_old, strict=True):
        variable.assign(value)
    with_beta = _surrogate_gradient_norm(learner, calls[0], denominator)
    with_pi_old = _surrogate_gradient_norm(learner, calls[0], pi_old)
    assert metrics["grad_norm"] == pytest.approx(with_beta, rel=1e-4)
    assert abs(with_pi_old / with_beta - 1) > 1e-2


def test_without_behavior_correction_the_denominator_is_pi_old() -> None:
    # The ablation: stale data treated as if π_old had collected it.
    learner = _learner(trainer={"behavior_correction": False})
    calls = _spy_policy_step(learner)
    rollout, pi_old = _stale(learner, iteration=3)
    learner.learn(rollout, iteration=3)
    np.testing.assert_allclose(calls[0][2], pi_old, rtol=1e-5, atol=1e-5)


def test_normalized_advantages_have_mean_zero_and_standard_deviation_one() -> None:
    rng = np.random.default_rng(4)
    raw = rng.normal(5.0, 3.0, size=1000).astype(np.float32)
    normalized = normalize_advantages(raw)
    assert abs(float(normalized.mean())) < 1e-5
    assert float(normalized.std()) == pytest.approx(1.0, abs=1e-5)
    # Order and relative spacing are kept: an affine map with a positive slope.
    slope = (normalized[1] - normalized[0]) / (raw[1] - raw[0])
    np.testing.assert_allclose(normalized, (raw - raw.mean()) * slope, rtol=1e-4, atol=1e-5)
    assert slope > 0


@pytest.mark.parametrize("normalize", [True, False])
def test_the_update_receives_normalized_advantages_when_asked(normalize: bool) -> None:
    # Rewards of ~1 and V_φ ≈ 0: the raw advantages have a mean far from 0.
    learner = _learner(advantage={"normalize": normalize})
    calls = _spy_policy_step(learner)
    learner.learn(_rollout(learner, 1), iteration=1)
    advantages = calls[0][3]
    if normalize:
        assert abs(float(advantages.mean())) < 1e-5
        assert float(advantages.std()) == pytest.approx(1.0, abs=1e-4)
    else:
        assert float(advantages.mean()) > 1.0


def test_a_scheduled_trust_region_bounds_each_step_and_is_reported() -> None:
    """With trainer.max_kl_final, update k of K has δ = δ₀ + (δ₁ − δ₀)·k/K: the
    reported max_kl follows it and each accepted step's KL stays within it."""
    learner = _learner(trainer={"total_steps": 4 * T * N, "max_kl": 0.02, "max_kl_final": 0.002})
    reported = []
    for iteration in range(1, 5):
        metrics = learner.learn(_rollout(learner, iteration, seed=iteration), iteration)
        assert metrics["line_search_accepted"]
        assert 0 < metrics["kl"] <= metrics["max_kl"] * (1 + 1e-6)
        reported.append(metrics["max_kl"])
    assert reported == pytest.approx([0.0155, 0.011, 0.0065, 0.002])
    constant = _learner(trainer={"total_steps": 4 * T * N, "max_kl": 0.02})
    assert constant.learn(_rollout(constant, 1), 1)["max_kl"] == pytest.approx(0.02)
