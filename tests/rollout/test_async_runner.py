"""Asynchronous runners: lag accounting, the stale-data estimator, fault recovery.

Workers step ``crashing_env.CountingEnv`` (observation ``[t, 0]``, reward 1,
episodes of 10 steps), so every column of a batch can be checked step by step.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
from crashing_env import CountingEnv, cached_counting_env
from paced_env import PacedCountingEnv
from ray_support import local_ray

from trpo_tf.advantages.gae import GeneralizedAdvantageEstimator
from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy, build_value
from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import AdvantageOutputs
from trpo_tf.learner import compute_advantages, staleness_metrics
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.async_runner import AsyncRunner, StepBudgetSpent
from trpo_tf.rollout.numpy_actor import NumpyActor
from trpo_tf.rollout.segment import WorkerSpec
from trpo_tf.train import train
from trpo_tf.trainer import TrpoHyperparameters, TrpoUpdate
from trpo_tf.trainer.trpo import policy_parameters, restore_policy
from trpo_tf.types import Rollout

T, K_ENVS, WORKERS = 8, 2, 2
SEGMENT = T * K_ENVS


def _policy():
    config = experiment_from_dict({"policy": {"hidden": [8]}})
    return build_policy(config, 2, gym.spaces.Discrete(2))


def _runner(env_fn=CountingEnv, runner_cls=AsyncRunner, policy=None, **kwargs):
    policy = policy or _policy()
    events: list[str] = []
    spec = WorkerSpec(env_fn, "counting", n_envs=K_ENVS, segment_length=T, seed=0)
    defaults = {"workers": WORKERS, "max_policy_lag": 1}
    defaults.update(kwargs)
    runner = runner_cls(
        spec,
        NumpyActor(policy, seed=0),
        ObservationNormalizer((2,), False),
        RewardNormalizer(WORKERS * K_ENVS, 0.99, False),
        on_event=events.append,
        **defaults,
    )
    return runner, events


def _assert_counting(rollout: Rollout) -> None:
    """Every column is one env's consecutive steps: t grows by 1 or restarts at 0."""
    t = rollout.observations[..., 0]
    following = np.concatenate([t[1:], rollout.last_observations[None, :, 0]])
    ended = rollout.terminated
    np.testing.assert_array_equal(following[~ended], t[~ended] + 1)
    np.testing.assert_array_equal(following[ended], 0)
    np.testing.assert_array_equal(t[ended], 9)  # the step that reached t = 10


def test_batches_have_sync_shape_and_carry_beta(tmp_path: Path) -> None:
    policy = _policy()
    runner, _ = _runner(policy=policy)
    try:
        rollout = runner.collect(policy_version=1)
        assert rollout.observations.shape == (T, WORKERS * K_ENVS, 2)
        assert rollout.behavior_log_prob.shape == (T, WORKERS * K_ENVS)
        _assert_counting(rollout)
        # β is the policy at version 1: its stored log-probs are π's on the batch.
        params = policy.dist_params(rollout.flat("observations"))
        log_prob = policy.distribution(params).log_prob(rollout.flat("actions")).numpy()
        np.testing.assert_allclose(log_prob, rollout.flat("behavior_log_prob"), atol=1e-5)
        np.testing.assert_allclose(params.numpy(), rollout.flat("behavior_params"), atol=1e-5)
        # Workers never load TensorFlow.
        assert runner.worker_info and all(
            not info["tensorflow_loaded"] for info in runner.worker_info.values()
        )
    finally:
        runner.close()


def test_lag_accounting_hand_driven() -> None:
    """Prefetching workers act with π_old while the learner updates: lag 1."""
    runner, _ = _runner(max_policy_lag=1)
    try:
        first = runner.collect(policy_version=1)
        assert (first.policy_version == 1).all() and first.dropped_steps == 0
        time.sleep(1.0)  # the workers finish their next segments with version 1
        runner.policy_updated(2)
        second = runner.collect(policy_version=2)
        assert (second.policy_version == 1).all() and second.dropped_steps == 0
        metrics = staleness_metrics(np.zeros((T, WORKERS * K_ENVS)), second.policy_version, 2)
        assert metrics["policy_lag_mean"] == metrics["policy_lag_max"] == 1.0
        assert runner.total_env_steps >= 2 * WORKERS * SEGMENT
    finally:
        runner.close()


def test_max_policy_lag_zero_drops_stale_segments() -> None:
    runner, _ = _runner(max_policy_lag=0, prefetch=True)
    try:
        runner.collect(policy_version=1)
        time.sleep(1.0)  # prefetched segments of version 1 are now waiting
        runner.policy_updated(2)
        rollout = runner.collect(policy_version=2)
        assert (rollout.policy_version == 2).all()
        assert rollout.dropped_steps == WORKERS * SEGMENT
        assert runner.dropped_steps_total == WORKERS * SEGMENT
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_without_prefetch_workers_wait_for_the_new_policy(kind: str, request) -> None:
    """No segment is granted between a batch and the next snapshot: a worker that
    could step during the update would act with the version the next batch drops."""
    runner, _ = _runner(runner_cls=_runner_class(kind, request), max_policy_lag=0)
    try:
        for version in (1, 2, 3):
            rollout = runner.collect(policy_version=version)
            assert (rollout.policy_version == version).all() and rollout.dropped_steps == 0
            time.sleep(0.2)  # the learner's update: the workers are idle meanwhile
            runner.policy_updated(version + 1)
        assert runner.dropped_steps_total == 0
    finally:
        runner.close()


def _hand_built_batch(n: int = 64):
    policy = _policy()
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(n, 2)).astype(np.float32)
    actions = rng.integers(0, 2, size=n).astype(np.int32)
    old_log_prob = policy.distribution(policy.dist_params(observations)).log_prob(actions).numpy()
    return policy, observations, actions, old_log_prob


def _update(policy, n: int) -> TrpoUpdate:
    value_network, value_optimizer = build_value(experiment_from_dict({}), 2)
    return TrpoUpdate(
        policy,
        value_network,
        value_optimizer,
        TrpoHyperparameters(max_kl=0.01, value_minibatch_size=16),
        batch_size=n,
        observation_dim=2,
    )


def test_importance_weights_are_pi_over_stored_beta() -> None:
    """log ρ = log π_old − log β uses the stored β; the surrogate divides by β."""
    policy, observations, actions, old_log_prob = _hand_built_batch()
    offset = np.where(np.arange(64) % 2 == 0, np.log(2.0), -np.log(2.0)).astype(np.float32)
    behavior = old_log_prob - offset  # β(a|s) = π_old(a|s) / w with w ∈ {2, 1/2}
    log_rho = old_log_prob - behavior
    metrics = staleness_metrics(log_rho, np.ones(64, np.int64), 1)
    assert metrics["is_weight_mean"] == pytest.approx(1.25)
    assert metrics["is_weight_max"] == pytest.approx(2.0)
    assert metrics["is_ess"] == pytest.approx(1.25**2 / 2.125)

    # ∇θ mean[π_θ/β · Â] at θ_old = mean[w · Â · ∇ log π]: with w = 2 everywhere the
    # surrogate gradient is exactly twice the on-policy one.
    advantages = np.random.default_rng(1).normal(size=64).astype(np.float32)
    update = _update(policy, 64)
    variables = policy.policy_variables

    def gradient(denominator: np.ndarray) -> np.ndarray:
        with tf.GradientTape() as tape:
            log_prob = policy.distribution(policy.dist_params(observations)).log_prob(actions)
            surrogate = tf.reduce_mean(tf.exp(log_prob - denominator) * advantages)
        return np.concatenate([g.numpy().ravel() for g in tape.gradient(surrogate, variables)])

    on_policy = gradient(old_log_prob)
    np.testing.assert_allclose(gradient(old_log_prob - np.log(2.0)), 2 * on_policy, rtol=1e-5)
    theta_old = policy_parameters(policy)
    norms = []
    for denominator in (old_log_prob, old_log_prob - np.float32(np.log(2.0))):
        restore_policy(policy, theta_old)  # each step starts from the same θ_old
        metrics = update.policy_step(observations, actions, denominator, advantages)
        norms.append(float(metrics["grad_norm"]))
    assert norms[1] == pytest.approx(2 * norms[0], rel=1e-5)

    # The learner hands log ρ to the advantage estimator.
    seen = {}

    def recording(inputs):
        seen["log_rho"] = inputs.log_rho
        return AdvantageOutputs(np.zeros_like(inputs.rewards), np.zeros_like(inputs.rewards))

    rollout = _rollout_of(observations.reshape(8, 8, 2), actions.reshape(8, 8), behavior)
    compute_advantages(rollout, lambda x: np.zeros(len(x)), recording, log_rho.reshape(8, 8))
    np.testing.assert_allclose(seen["log_rho"], log_rho.reshape(8, 8))


def _rollout_of(observations, actions, behavior) -> Rollout:
    shape = actions.shape
    return Rollout(
        observations=observations,
        actions=actions,
        rewards=np.ones(shape, np.float32),
        raw_rewards=np.ones(shape, np.float32),
        terminated=np.zeros(shape, bool),
        truncated=np.zeros(shape, bool),
        final_observations=np.zeros_like(observations),
        last_observations=observations[-1],
        behavior_log_prob=behavior.reshape(shape),
        behavior_params=np.zeros((*shape, 2), np.float32),
        policy_version=np.ones(shape, np.int64),
        episode_returns=np.zeros(0),
        episode_lengths=np.zeros(0, np.int64),
    )


def test_kl_is_measured_against_pi_old_not_beta() -> None:
    policy, observations, actions, old_log_prob = _hand_built_batch()
    behavior = old_log_prob - np.random.default_rng(2).uniform(0.0, 1.0, 64).astype(np.float32)
    advantages = np.random.default_rng(3).normal(size=64).astype(np.float32)
    old_params = policy.dist_params(observations).numpy()
    metrics = _update(policy, 64).policy_step(observations, actions, behavior, advantages)
    assert bool(metrics["line_search_accepted"])
    new_params = policy.dist_params(observations)
    expected = tf.reduce_mean(
        policy.distribution(old_params).kl_divergence(policy.distribution(new_params))
    )
    assert float(metrics["kl"]) == pytest.approx(float(expected), rel=1e-4, abs=1e-7)
    assert 0.0 < float(metrics["kl"]) <= 0.01 + 1e-6


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for every Ray case of this module."""
    with local_ray(num_cpus=WORKERS + 1) as ray:
        yield ray


def _runner_class(kind: str, request):
    if kind == "ray":
        request.getfixturevalue("ray_session")
        from trpo_tf.rollout.ray_runner import RayRunner

        return RayRunner
    return AsyncRunner


def _collect_until(runner, done, iterations: int = 20) -> int:
    """Collect (checking every batch) until ``done()``; returns the dropped steps.

    Batches take the first segments to arrive, so which iteration sees a fault
    depends on timing (on a loaded machine a dead Ray actor is noticed some batches
    later); with a large ``max_policy_lag`` nothing is dropped as stale.
    """
    dropped = 0
    for version in range(1, iterations + 1):
        rollout = runner.collect(policy_version=version)
        assert rollout.num_steps == WORKERS * SEGMENT
        _assert_counting(rollout)  # every column whole, rebuilt envs restart cleanly
        dropped += rollout.dropped_steps
        runner.policy_updated(version + 1)
        if done():
            return dropped
    raise AssertionError(f"no fault seen in {iterations} batches")


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_env_that_raises_is_rebuilt_and_its_partial_episode_discarded(
    kind: str, tmp_path: Path, request
) -> None:
    env_fn = functools.partial(
        CountingEnv, crash_at=5, crash_mode="raise", marker=str(tmp_path / "crashed")
    )
    runner, events = _runner(env_fn, _runner_class(kind, request), max_policy_lag=100)
    try:
        # The failure's line may be reported as it happens, a batch before the segment
        # that counts the steps it threw away: wait for both.
        dropped = _collect_until(
            runner, lambda: runner.env_errors > 0 and runner.dropped_steps_total > 0
        )
        # Life steps 1–4 were written, step 5 raised: 5 steps thrown away.
        assert dropped == 5
        assert runner.env_errors == 1 and runner.worker_restarts == 0
        assert any("EnvCrash" in e and "rebuilt" in e for e in events)
        assert not any(info["tensorflow_loaded"] for info in runner.worker_info.values())
        after = runner.collect(policy_version=runner.policy_version)
        assert after.dropped_steps == 0
        _assert_counting(after)
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_dead_worker_is_restarted_and_nothing_else_is_lost(
    kind: str, tmp_path: Path, request
) -> None:
    env_fn = functools.partial(
        CountingEnv, crash_at=5, crash_mode="exit", marker=str(tmp_path / "crashed")
    )
    runner, events = _runner(env_fn, _runner_class(kind, request), max_policy_lag=100)
    try:
        dropped = _collect_until(runner, lambda: runner.worker_restarts > 0)
        assert dropped == SEGMENT  # the dead worker's in-flight segment, nothing else
        assert any("died" in e and "restarted" in e for e in events)
        for _ in range(2):
            rollout = runner.collect(policy_version=runner.policy_version)
            assert rollout.dropped_steps == 0
            _assert_counting(rollout)
            runner.policy_updated(runner.policy_version + 1)
        assert runner.worker_restarts == 1 and runner.env_errors == 0
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_a_slow_worker_is_waited_for_not_dropped(kind: str, tmp_path: Path, request) -> None:
    """One worker steps ~30× slower. Taking the first segments to arrive, the fast one
    would fill each batch and the slow one's segment would reach the batch after next,
    two versions old, and be dropped; instead the fast one's extra segment is held for
    the next batch and the learner waits for the slow one."""
    env_fn = functools.partial(PacedCountingEnv, marker=str(tmp_path / "slow"), delay_s=0.003)
    runner, _ = _runner(env_fn, _runner_class(kind, request), max_policy_lag=1)
    try:
        for version in range(1, 9):
            rollout = runner.collect(policy_version=version)
            _assert_counting(rollout)
            assert rollout.dropped_steps == 0
            assert (rollout.policy_version >= version - 1).all()
            time.sleep(0.02)  # the learner's update
            runner.policy_updated(version + 1)
        assert runner.dropped_steps_total == 0
    finally:
        runner.close()


@pytest.mark.parametrize("kind", ["process", "ray"])
def test_no_segment_is_requested_past_the_step_budget(kind: str, request) -> None:
    batch = WORKERS * SEGMENT
    budget = 3 * batch + SEGMENT - 1  # room for 3 batches, not for one more segment
    runner, _ = _runner(runner_cls=_runner_class(kind, request), step_budget=budget)
    try:
        for version in (1, 2, 3):
            runner.collect(policy_version=version)
            runner.policy_updated(version + 1)
        # No prefetch for a batch that no budget holds: nothing in flight, nothing held.
        assert runner._ledger.outstanding() == 0
        assert runner.total_env_steps == 3 * batch and runner.dropped_steps_total == 0
        with pytest.raises(StepBudgetSpent, match=f"trainer.total_steps={budget:,} has no room"):
            runner.collect(policy_version=4)
    finally:
        runner.close()


def test_dropped_segments_count_against_the_step_budget() -> None:
    """With max_policy_lag 0 and prefetch every prefetched segment is stale: the drops
    use up the budget, which then cannot fill the third batch."""
    batch = WORKERS * SEGMENT
    runner, _ = _runner(max_policy_lag=0, prefetch=True, step_budget=3 * batch)
    batches = 0
    try:
        with pytest.raises(StepBudgetSpent, match="the run ends after 2 iterations"):
            for version in range(1, 5):
                runner.collect(policy_version=version)
                batches += 1
                assert runner.total_env_steps <= 3 * batch
                time.sleep(0.5)  # the prefetched segments finish with this version
                runner.policy_updated(version + 1)
        assert batches == 2
        assert runner.total_env_steps == 3 * batch
        assert runner.dropped_steps_total == WORKERS * SEGMENT
    finally:
        runner.close()


def test_an_env_a_ray_worker_cannot_build_is_one_error_naming_its_node(request) -> None:
    """A plug-in env missing on a worker node: the worker's ConfigError, with the node."""
    from trpo_tf.rollout.segment import EnvFactory

    runner, _ = _runner(EnvFactory("NoSuchEnv-v0"), _runner_class("ray", request))
    try:
        with pytest.raises(ConfigError) as error:
            runner.collect(policy_version=1)
        message = str(error.value)
        assert "unknown environment 'NoSuchEnv-v0'" in message
        assert "(rollout worker 0 on Ray node " in message or "(rollout worker 1 on" in message
        assert "\n" not in message
    finally:
        runner.close()


def test_async_needs_a_numpy_mirror_and_divisible_envs(monkeypatch) -> None:
    from trpo_tf.agent import Agent
    from trpo_tf.rollout.actor import Actor
    from trpo_tf.rollout.runners import build_runner

    config = experiment_from_dict({"env": {"n_envs": 4}, "runner": {"kind": "async"}})
    agent = Agent.build(config, 4, gym.spaces.Discrete(2))
    tf_actor = Actor(agent.policy, 4, 4, 0)
    with pytest.raises(ConfigError, match="runner.kind async"):
        build_runner(config, None, tf_actor, agent, 64)
    odd = experiment_from_dict(
        {"env": {"n_envs": 3}, "trainer": {"steps_per_iteration": 96}, "runner": {"kind": "async"}}
    )
    with pytest.raises(ConfigError, match="multiple of runner.workers"):
        build_runner(odd, None, NumpyActor(agent.policy, 0), agent, 64)

    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    ray_config = experiment_from_dict({"env": {"n_envs": 4}, "runner": {"kind": "ray"}})
    with pytest.raises(ConfigError, match=r"pip install 'trpo_tf\[ray\]'"):
        build_runner(ray_config, None, NumpyActor(agent.policy, 0), agent, 64)


def test_train_end_to_end_with_async_runner(tmp_path: Path) -> None:
    config = experiment_from_dict(
        {
            "env": {"id": "CartPole-v1", "n_envs": 4, "normalize_obs": True},
            "runner": {"kind": "async", "workers": 2, "max_policy_lag": 1},
            "trainer": {"steps_per_iteration": 256, "total_steps": 1024, "jit_compile": False},
            "value": {"epochs": 2},
            "eval": {"every": 4, "episodes": 2},
            "checkpoint": {"every": 0},
            "tracking": {"tensorboard": False},
        }
    )
    result = train(config, tmp_path / "run", quiet=True)
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    lags = [float(r["policy_lag_max"]) for r in rows]
    assert lags[0] == 0.0 and max(lags) <= 1.0
    assert all(0.0 <= float(r["dropped_fraction"]) < 1.0 for r in rows)
    assert all(0.0 < float(r["is_ess"]) <= 1.0 + 1e-9 for r in rows)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["eval_episodes"] == 2
    # The budget bounds the steps collected: dropped ones are part of it, and no
    # segment is requested for a batch past the last.
    assert result.env_steps == summary["trained_steps"] + summary["dropped_steps"] <= 1024
    assert summary["trained_steps"] == 1024
    assert [int(r["dropped_steps"]) for r in rows][-1] == summary["dropped_steps"]
    assert summary["worker_restarts"] == 0 and rows[-1]["worker_restarts"] == "0"
    assert 0.0 < summary["runner_start_s"] < summary["wall_time_s"]


def test_gae_on_an_async_batch_matches_the_sync_estimator() -> None:
    """The learner's advantage code needs nothing runner-specific."""
    runner, _ = _runner()
    try:
        rollout = runner.collect(policy_version=1)
    finally:
        runner.close()
    gae = GeneralizedAdvantageEstimator(gamma=0.9, lam=1.0)
    _, advantages, targets = compute_advantages(rollout, lambda x: np.zeros(len(x)), gae)
    # V ≡ 0, λ = 1: the target at a step is the discounted rewards to the episode end
    # or, past the segment end, nothing (V(s_T) = 0).
    t = rollout.observations[..., 0]
    rows = np.arange(T)[:, None]
    to_end = np.minimum(10 - t, T - rows)
    np.testing.assert_allclose(targets, (1 - 0.9**to_end) / (1 - 0.9), rtol=1e-5)
    np.testing.assert_allclose(advantages, targets, rtol=1e-5)


def test_a_factory_that_returns_one_env_for_every_slot_is_a_config_error() -> None:
    # A worker steps K_ENVS envs in one process: a cached instance would have all of
    # its slots step one environment. The worker's error reaches the learner as is.
    runner, _ = _runner(env_fn=cached_counting_env)
    try:
        with pytest.raises(ConfigError, match=r"'counting'.* same CountingEnv object"):
            runner.collect(policy_version=1)
    finally:
        runner.close()
