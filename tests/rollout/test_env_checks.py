"""The checks every env output goes through (sampler, workers, evaluation)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
from crashing_env import CountingEnv

from trpo_tf.errors import EnvRuntimeError, NonFiniteEnvError
from trpo_tf.evaluation import evaluate
from trpo_tf.normalization import ObservationNormalizer
from trpo_tf.rollout.env_checks import (
    FLOAT32_MAX,
    NonFiniteGuard,
    check_reward_array,
    env_raised,
    is_number,
    one_line,
)


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.0, -2.0, FLOAT32_MAX, -FLOAT32_MAX]),
        np.array([[1.0, 3e38]], np.float32),
        np.array([np.iinfo(np.int64).max, 0]),
        np.array([True, False]),
    ],
)
def test_values_storable_in_float32_pass_unchanged(values):
    guard = NonFiniteGuard("env", clip=False)
    assert guard(values, "observation", 1) is values


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (np.array([0.0, 1e39]), "an observation of 1e+39"),
        (np.array([0.0, -3.5e38]), "an observation of -3.5e+38"),
        (np.array([0.0, np.nan]), "a non-finite observation (nan)"),
        (np.array([0.0, np.inf], np.float32), "a non-finite observation (inf)"),
    ],
)
def test_values_not_finite_in_float32_raise_naming_the_value(values, shown):
    guard = NonFiniteGuard("my-env", clip=False)
    with pytest.raises(NonFiniteEnvError) as raised:
        guard(values, "observation", 7)
    message = str(raised.value)
    assert message.startswith(f"environment 'my-env' (env index 1) returned {shown} at env step 7")
    assert "env.clip_nonfinite: true" in message


def test_clipping_replaces_what_float32_cannot_hold_and_counts_it():
    guard = NonFiniteGuard("env", clip=True, bound=5.0)
    values = np.array([[1.0, 1e39], [-1e39, np.nan], [np.inf, -np.inf]])
    cleaned = guard(values, "observation", 1)
    np.testing.assert_array_equal(cleaned, [[1.0, 5.0], [-5.0, 0.0], [5.0, -5.0]])
    assert guard.replaced == 5
    float32 = guard(np.array([np.inf, 2.0], np.float32), "reward", 2)
    assert float32.dtype == np.float32
    np.testing.assert_array_equal(float32, [5.0, 2.0])


def test_env_ids_and_context_name_the_env_that_failed():
    guard = NonFiniteGuard("env", clip=False, context="rollout worker 3")
    with pytest.raises(NonFiniteEnvError, match=r"\(rollout worker 3, env index 5\) returned"):
        guard(np.array([1.0, np.nan]), "reward", 1, env_ids=np.array([4, 5]))


def test_values_that_are_not_numbers_are_an_env_error():
    guard = NonFiniteGuard("env", clip=True)
    with pytest.raises(EnvRuntimeError, match="returned rewards of dtype <U3"):
        guard(np.array(["1.0"]), "reward", 1)


def test_rewards_must_be_numbers():
    for reward in (1, 1.5, np.float32(2.0), np.int64(3), True, np.array(4.0)):
        assert is_number(reward), reward
    for reward in ("1.0", None, [1.0], np.array([1.0]), 1j):
        assert not is_number(reward), reward
    np.testing.assert_array_equal(check_reward_array("env", np.array([1.0, 2.0]), 3), [1, 2])
    with pytest.raises(EnvRuntimeError, match=r"reward of type str \('2'\) from step\(\)"):
        check_reward_array("env", np.array([1, "2"], object), 3)
    with pytest.raises(EnvRuntimeError, match=r"reward of type str \('1'\)"):
        check_reward_array("env", np.array(["1", "2"]), 3)


def test_env_errors_are_one_line():
    error = ValueError("first line\n  second   line\n")
    assert one_line(error) == "ValueError: first line second line"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(RuntimeError("x" * 1000))) == 300
    message = str(env_raised("my-env", "step()", error, 12, "env index 2"))
    assert message.startswith(
        "environment 'my-env' (env index 2) raised in step() at env step 12: "
        "ValueError: first line second line; "
    )
    assert "\n" not in message


def _evaluate(env_fn, clip_nonfinite: bool = False) -> np.ndarray:
    return evaluate(
        env_fn,
        act=lambda observations: np.zeros(len(observations), np.int64),
        head=SimpleNamespace(to_env_action=lambda actions: actions),
        observation_normalizer=ObservationNormalizer((2,), enabled=False),
        episodes=2,
        seed=0,
        clip_nonfinite=clip_nonfinite,
        env_name="eval-env",
    )


def test_evaluation_checks_rewards_in_float32_too():
    env_fn = functools.partial(CountingEnv, episode_length=3, reward=1e39)
    with pytest.raises(NonFiniteEnvError, match=r"'eval-env' \(env index 0\) returned a reward"):
        _evaluate(env_fn)
    np.testing.assert_array_equal(_evaluate(env_fn, clip_nonfinite=True), [3e6, 3e6])
