"""Deterministic evaluation handles NaN/inf from the env as training does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf.errors import EnvRuntimeError, NonFiniteEnvError
from trpo_tf.evaluation import evaluate
from trpo_tf.normalization import ObservationNormalizer


class NanEnv(gym.Env):
    """Three steps per episode; the second step's observation and reward are NaN."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {}

    def step(self, action):
        self.t += 1
        bad = self.t == 2
        observation = np.full(2, np.nan) if bad else np.ones(2)
        return observation, (np.nan if bad else 1.0), self.t == 3, False, {}


class Identity:
    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return actions


def _act(observations: np.ndarray) -> np.ndarray:
    assert np.isfinite(observations).all()  # the policy never sees NaN
    return np.zeros(len(observations), np.int64)


def _evaluate(clip_nonfinite: bool) -> np.ndarray:
    normalizer = ObservationNormalizer((2,), enabled=False)
    return evaluate(NanEnv, _act, Identity(), normalizer, 3, seed=0, clip_nonfinite=clip_nonfinite)


def test_clip_nonfinite_replaces_nan_in_evaluation_as_in_training() -> None:
    returns = _evaluate(clip_nonfinite=True)
    np.testing.assert_array_equal(returns, [2.0, 2.0, 2.0])  # the NaN reward counts 0


def test_nonfinite_in_evaluation_without_clipping_names_the_setting() -> None:
    with pytest.raises(NonFiniteEnvError, match="env.clip_nonfinite"):
        _evaluate(clip_nonfinite=False)


class FailingEnv(NanEnv):
    """Raises in ``reset``/``step`` when told to, or returns a reward that is not a number."""

    def __init__(self, fail_in: str) -> None:
        self.fail_in = fail_in

    def reset(self, *, seed=None, options=None):
        if self.fail_in == "reset":
            raise ConnectionError("simulator socket closed")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.fail_in == "step":
            raise RuntimeError("pole angle exploded")
        observation, _, terminated, truncated, info = super().step(action)
        return observation, "one", terminated, truncated, info


@pytest.mark.parametrize(
    ("fail_in", "expected"),
    [
        (
            "reset",
            "environment 'failing' (evaluation) raised in reset() at env step 0: "
            "ConnectionError: simulator socket closed; fix the environment",
        ),
        (
            "step",
            "environment 'failing' (evaluation) raised in step() at env step 2: "
            "RuntimeError: pole angle exploded; fix the environment",
        ),
    ],
)
def test_env_that_raises_in_evaluation_is_one_line(fail_in: str, expected: str) -> None:
    normalizer = ObservationNormalizer((2,), enabled=False)
    with pytest.raises(EnvRuntimeError) as caught:
        evaluate(
            lambda: FailingEnv(fail_in), _act, Identity(), normalizer, 2, 0, env_name="failing"
        )
    assert str(caught.value) == expected
    assert caught.value.__cause__ is not None


def test_reward_that_is_not_a_number_in_evaluation_is_one_line() -> None:
    normalizer = ObservationNormalizer((2,), enabled=False)
    with pytest.raises(EnvRuntimeError) as caught:
        evaluate(
            lambda: FailingEnv("reward"), _act, Identity(), normalizer, 2, 0, env_name="failing"
        )
    message = str(caught.value)
    assert message.startswith(
        "environment 'failing' (evaluation) returned a reward of type str ('one') from step()"
    )
    assert "\n" not in message


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*not within the observation space")
def test_training_and_eval_of_a_nan_env_with_clip_nonfinite_are_finite(tmp_path) -> None:
    import json

    from trpo_tf.config import experiment_from_dict
    from trpo_tf.export import evaluate_export
    from trpo_tf.run_loading import evaluate_run
    from trpo_tf.train import train

    config = experiment_from_dict(
        {
            "name": "nan-pendulum",
            "env": {"id": "Pendulum-v1", "kwargs": {"g": float("nan")}, "clip_nonfinite": True},
            "trainer": {"total_steps": 1024, "steps_per_iteration": 1024},
            "eval": {"episodes": 2},
        }
    )
    train(config, tmp_path / "run", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert np.isfinite(summary["final_eval_return"]), summary
    assert np.isfinite(evaluate_run(tmp_path / "run", episodes=2, seed=0)).all()
    assert np.isfinite(evaluate_export(tmp_path / "run" / "export", episodes=2, seed=0)).all()
