"""``FaultInjection-v1``: a CartPole that injects one kind of fault, from a chosen step on.

It extends ``FaultyCartPole`` (``tests/rollout/faulty_cartpole.py``, whose
``raise_in_step_at`` it keeps) with the faults the fault suite drives through
training. Every fault is chosen by a constructor keyword, so an experiment asks
for it through ``env.kwargs``:

* ``reward``: replaces the reward (NaN, ±inf, ``1e39``, a str, None, a list, ...),
* ``reward_as``: replaces the reward by a value YAML cannot write (:data:`REWARD_FORMS`),
* ``observation``: replaces ``observation[0]`` (the observation becomes float64,
  so ``1e39`` reaches the library as it is, beyond float32's range),
* ``observation_as``: returns the observation as another type or shape
  (:data:`OBSERVATION_FORMS`),
* ``raise_in_reset_at``: ``reset()`` raises on its n-th call (1: the first one),
  ``fault_from`` aside,
* ``step_raises``: ``step()`` raises,
* ``step_sleep_s``: every ``step()`` sleeps this long (a slow simulator),

each from life step ``fault_from`` on (steps counted over all episodes of this
env object; 0 also spoils the observation of the first ``reset()``), and only
``where`` asked: ``anywhere``, ``training`` or ``evaluation`` (an env reset from
inside :mod:`trpo_tf.evaluation`; reset seeds would not tell: the asynchronous
workers' are random 32-bit numbers).

Importing this module registers the id with gymnasium. In other processes:
``sitecustomize_dir()`` for a ``trpo-tf`` subprocess, and
:class:`RegisteringEnvFactory` for the asynchronous runner's workers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

_HERE = Path(__file__).resolve().parent
_ROLLOUT_TESTS = _HERE.parent / "rollout"
if str(_ROLLOUT_TESTS) not in sys.path:
    sys.path.append(str(_ROLLOUT_TESTS))

from faulty_cartpole import FaultyCartPole, SimulatorDiverged  # noqa: E402

from trpo_tf.rollout.segment import EnvFactory  # noqa: E402

ENV_ID = "FaultInjection-v1"
WHERE = ("anywhere", "training", "evaluation")

OBSERVATION_FORMS = {
    "list": lambda obs: obs.tolist(),  # the right length: a plain list of floats
    "short_list": lambda obs: obs.tolist()[:3],
    "long_array": lambda obs: np.append(obs, 0.0),
    "str": lambda obs: "cart at rest",
    "none": lambda obs: None,
    "str_in_list": lambda obs: [*obs.tolist()[:3], "x"],
    "nested_list": lambda obs: [obs.tolist()],
    "dict": lambda obs: {"position": obs.tolist()},
}
"""``observation_as`` values: how the observation is returned instead of an array."""

REWARD_FORMS = {
    "none": None,
    "array": np.array([1.0]),  # shape (1,), not a scalar
    "complex": 1.0 + 2.0j,
    "bytes": b"1.0",
    "numpy_str": np.str_("1.0"),
}
"""``reward_as`` values: rewards of the wrong type that YAML cannot write."""


def _called_from(module: str) -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == module:
            return True
        frame = frame.f_back
    return False


class FaultInjectionEnv(FaultyCartPole):
    def __init__(
        self,
        reward: Any = None,
        reward_as: str | None = None,
        observation: Any = None,
        observation_as: str | None = None,
        fault_from: int = 1,
        raise_in_step_at: int | None = None,
        raise_in_reset_at: int | None = None,
        step_raises: bool = False,
        step_sleep_s: float = 0.0,
        where: str = "anywhere",
        render_mode: str | None = None,
    ) -> None:
        # The reward is replaced here, from fault_from on, not by FaultyCartPole on every step.
        super().__init__(reward=None, raise_in_step_at=raise_in_step_at, render_mode=render_mode)
        if reward_as is not None and reward_as not in REWARD_FORMS:
            raise ValueError(f"reward_as must be one of {sorted(REWARD_FORMS)}")
        if observation_as is not None and observation_as not in OBSERVATION_FORMS:
            raise ValueError(f"observation_as must be one of {sorted(OBSERVATION_FORMS)}")
        if where not in WHERE:
            raise ValueError(f"where must be one of {WHERE}")
        self.faulty_reward = reward
        self.reward_as = reward_as
        self.faulty_observation = observation
        self.observation_as = observation_as
        self.fault_from = fault_from
        self.raise_in_reset_at = raise_in_reset_at
        self.step_raises = step_raises
        self.step_sleep_s = step_sleep_s
        self.where = where
        self.in_evaluation = False
        self.life_step = 0
        self.resets = 0

    @property
    def armed_for_reset(self) -> bool:
        return self.where in ("anywhere", "evaluation" if self.in_evaluation else "training")

    @property
    def armed(self) -> bool:
        return self.armed_for_reset and self.life_step >= self.fault_from

    def _spoiled(self, observation: np.ndarray) -> Any:
        if not self.armed:
            return observation
        if self.faulty_observation is not None:
            observation = observation.astype(np.float64)
            observation[0] = self.faulty_observation
        if self.observation_as is not None:
            return OBSERVATION_FORMS[self.observation_as](observation)
        return observation

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.resets += 1
        self.in_evaluation = _called_from("trpo_tf.evaluation")
        if self.resets == self.raise_in_reset_at and self.armed_for_reset:
            # Two lines and a cause, as a simulator's own errors often read.
            raise SimulatorDiverged(
                f"reset {self.resets} failed:\n  solver did not converge"
            ) from OSError(5, "Input/output error")
        observation, info = super().reset(seed=seed, options=options)
        return self._spoiled(observation), info

    def step(self, action):
        self.life_step += 1
        if self.step_sleep_s:
            time.sleep(self.step_sleep_s)
        if self.step_raises and self.armed:
            raise SimulatorDiverged(f"step {self.life_step}: contact forces exploded")
        observation, reward, terminated, truncated, info = super().step(action)
        if self.armed:
            if self.faulty_reward is not None:
                reward = self.faulty_reward
            if self.reward_as is not None:
                reward = REWARD_FORMS[self.reward_as]
        return self._spoiled(observation), reward, terminated, truncated, info


class RegisteringEnvFactory(EnvFactory):
    """The asynchronous runner's env factory, unpickled in a worker by importing this module.

    A rollout worker is a fresh process: unpickling this class imports ``fault_env``,
    which registers :data:`ENV_ID` there before the factory makes the env.
    """


def sitecustomize_dir(parent: Path) -> str:
    """A ``PYTHONPATH`` that registers :data:`ENV_ID` in every Python process started with it."""
    site = parent / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import fault_env  # noqa: F401\n")
    return f"{site}:{_HERE}"


if ENV_ID not in gym.registry:
    gym.register(
        ENV_ID,
        entry_point=FaultInjectionEnv,
        max_episode_steps=500,
        disable_env_checker=True,  # gymnasium's own warnings are not what is tested
    )
