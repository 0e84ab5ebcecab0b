"""Asynchronous workers whose env keeps failing: one line, and soon.

An env that raises in every episode never lets a worker finish a segment; it
must end the run within seconds with the env's own error text, not after the
stall timeout. Workers that keep dying end the run with one line as well.
"""

from __future__ import annotations

import functools
import time

import gymnasium as gym
import numpy as np
import pytest
from crashing_env import CountingEnv

from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.errors import (
    EnvRuntimeError,
    NonFiniteEnvError,
    NormalizerOverflowError,
    RolloutWorkerError,
    TrpoTfError,
)
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.async_runner import AsyncRunner
from trpo_tf.rollout.numpy_actor import NumpyActor
from trpo_tf.rollout.segment import WorkerSpec

T, K_ENVS, WORKERS = 8, 2, 2
# Far above what any test here may take: the failures must not wait for it.
STALL_TIMEOUT_S = 600.0
PROMPT_S = 60.0  # generous for a loaded 2-core machine; the failures take ~1-2 s


@pytest.fixture(scope="module")
def policy():
    config = experiment_from_dict({"policy": {"hidden": [8]}})
    return build_policy(config, 2, gym.spaces.Discrete(2))


def _runner(policy, env_fn, normalize_reward: bool = False, **kwargs):
    events: list[str] = []
    spec = WorkerSpec(env_fn, "counting", n_envs=K_ENVS, segment_length=T, seed=0)
    options = {"workers": WORKERS, "max_policy_lag": 1, "stall_timeout_s": STALL_TIMEOUT_S}
    options.update(kwargs)
    runner = AsyncRunner(
        spec,
        NumpyActor(policy, seed=0),
        ObservationNormalizer((2,), False),
        RewardNormalizer(WORKERS * K_ENVS, 0.99, normalize_reward),
        on_event=events.append,
        **options,
    )
    return runner, events


def _collect_error(runner, error_type: type[TrpoTfError]) -> tuple[TrpoTfError, float]:
    start = time.monotonic()
    try:
        with pytest.raises(error_type) as raised:
            for version in range(1, 6):
                runner.collect(policy_version=version)
                runner.policy_updated(version + 1)
    finally:
        runner.close()
    message = str(raised.value)
    assert "\n" not in message
    return raised.value, time.monotonic() - start


def test_env_that_raises_in_every_episode_stops_the_run_promptly(policy) -> None:
    # Episodes of 10 steps, each fails at its 5th: no episode ever finishes, and no
    # segment (8 steps per env) either.
    env_fn = functools.partial(CountingEnv, crash_at=5)
    runner, events = _runner(policy, env_fn)
    error, elapsed = _collect_error(runner, EnvRuntimeError)
    message = str(error)
    assert elapsed < PROMPT_S
    assert "environment 'counting'" in message
    assert "EnvCrash: injected failure at episode step 5" in message
    assert "step()" in message and "rollout worker" in message
    assert "5 times without finishing an episode" in message
    # The failures before the fatal one were reported as they happened, each kind once.
    failures = [e for e in events if "raised in step()" in e]
    assert failures and "EnvCrash: injected failure at episode step 5" in failures[0]
    assert len(failures) == 1


def test_env_that_raises_in_every_reset_stops_the_run(policy) -> None:
    # The workers fail while building their envs; the learner hears it in collect().
    runner, _ = _runner(policy, functools.partial(CountingEnv, crash_mode="reset"))
    error, elapsed = _collect_error(runner, EnvRuntimeError)
    message = str(error)
    assert elapsed < PROMPT_S
    assert "reset() raised EnvCrash: injected failure in reset" in message
    assert "environment 'counting'" in message


def test_env_that_raises_now_and_then_is_still_rebuilt(policy) -> None:
    """Episodes of 10 steps failing at step 9 finish no episode, but segments of 8 steps
    do finish: the worker keeps going (the stepped rows are valid) instead of stopping."""
    env_fn = functools.partial(CountingEnv, crash_at=9)
    runner, events = _runner(policy, env_fn, max_policy_lag=100)
    try:
        for version in range(1, 4):
            rollout = runner.collect(policy_version=version)
            assert rollout.num_steps == T * K_ENVS * WORKERS
            runner.policy_updated(version + 1)
    finally:
        runner.close()
    assert runner.env_errors > 0
    assert any("EnvCrash" in e for e in events)


def test_workers_that_keep_dying_end_the_run_with_one_line(policy) -> None:
    # Every episode kills its worker process at its 3rd step: no segment is ever delivered.
    env_fn = functools.partial(CountingEnv, crash_at=3, crash_mode="exit")
    runner, events = _runner(policy, env_fn, max_restarts=2)
    error, elapsed = _collect_error(runner, RolloutWorkerError)
    message = str(error)
    assert elapsed < PROMPT_S
    assert "environment 'counting'" in message
    assert f"of {WORKERS}" in message
    assert "died 3 times in a row without delivering a segment" in message
    assert "exit code 1" in message
    assert "worker restarts in this run" in message
    assert any("died (exit code 1)" in e and "restarted" in e for e in events)


def test_reward_that_is_not_a_number_is_one_line_from_the_worker(policy) -> None:
    runner, _ = _runner(policy, functools.partial(CountingEnv, reward="1.0"))
    error, _ = _collect_error(runner, EnvRuntimeError)
    message = str(error)
    assert "environment 'counting'" in message
    assert "reward of type str ('1.0')" in message
    assert "rollout worker" in message


@pytest.mark.parametrize("reward", [1e39, -1e39, float("nan")])
def test_reward_not_finite_in_float32_is_caught_in_the_worker(policy, reward) -> None:
    runner, _ = _runner(policy, functools.partial(CountingEnv, reward=reward))
    error, _ = _collect_error(runner, NonFiniteEnvError)
    message = str(error)
    assert "environment 'counting' (rollout worker" in message
    assert "reward" in message and "env.clip_nonfinite" in message


def test_reward_beyond_float32_is_replaced_in_the_worker_when_clipping(policy) -> None:
    events: list[str] = []
    spec = WorkerSpec(
        functools.partial(CountingEnv, reward=1e39),
        "counting",
        n_envs=K_ENVS,
        segment_length=T,
        seed=0,
        clip_nonfinite=True,
    )
    runner = AsyncRunner(
        spec,
        NumpyActor(policy, seed=0),
        ObservationNormalizer((2,), False),
        RewardNormalizer(WORKERS * K_ENVS, 0.99, False),
        workers=WORKERS,
        max_policy_lag=1,
        on_event=events.append,
    )
    try:
        rollout = runner.collect(policy_version=1)
    finally:
        runner.close()
    np.testing.assert_array_equal(rollout.raw_rewards, 1e6)
    np.testing.assert_array_equal(rollout.rewards, 1e6)
    assert rollout.nonfinite_replaced == T * K_ENVS * WORKERS


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_reward_normalizer_overflow_names_the_normalizer_and_the_env(policy) -> None:
    runner, _ = _runner(policy, CountingEnv, normalize_reward=True)
    runner.reward_norm.returns[:] = 1.7e308  # one more reward of 1 (× γ) overflows
    runner.reward_norm.gamma = 2.0
    error, _ = _collect_error(runner, NormalizerOverflowError)
    message = str(error)
    assert message.startswith("environment 'counting' at env step ")
    assert "reward normalizer's discounted return overflowed float64" in message
