"""The environment part of the pre-check (:mod:`trpo_tf.plugin_checks`).

:class:`EnvProbe` makes the run's env as training makes it and resets it with the
run's seed; a ``trpo_tf.envs`` plug-in is made twice (each call must return a new
object), both are reset and, once the head has produced actions, stepped once, and
``reset``/``step`` must return what gymnasium specifies (a reward that is an int or
float, ``terminated``/``truncated`` bools, observations that flatten to the
observation space's width). A failure is one :class:`~trpo_tf.errors.PluginError`
line naming the plug-in, its package, entry point and the call.

:func:`check_env` is this part without stepping, for callers that check before
TensorFlow is imported: importing this module does not import TensorFlow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf import registry
from trpo_tf.config.contracts import describe_plugin
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.envs import make_env_fn
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.plugin_errors import one_line, plugin_broke, plugin_raised
from trpo_tf.rollout.env_checks import env_raised, is_number

BATCH = 7
"""Rows of observations the head is checked on (odd, so it rarely equals a width)."""

ENV_KEY = "env.id"


def check_env(config: ExperimentConfig) -> None:
    """The environment part of the pre-check, without stepping and without TensorFlow.

    For a ``trpo_tf.envs`` plug-in: the factory called twice as training calls it
    (two new ``gymnasium.Env`` objects), each reset with the run's seed, observations
    that flatten to the observation space. Nothing for a gymnasium id.

    Raises:
        PluginError: naming the env plug-in, its package, entry point and the call.
        ConfigError: ``env.kwargs`` has a key the factory does not take.
    """
    if not registry.has(registry.ENVS, config.env.id):
        return
    with probe_envs(config):
        pass


class EnvProbe:
    """The env(s) of the pre-check: made, reset, stepped once, closed."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.env_id = config.env.id
        self.kwargs = dict(config.env.kwargs)
        self.seed = config.seed
        self.plugin = registry.has(registry.ENVS, self.env_id)
        self.envs: list[gym.Env] = []
        self.rows: list[np.ndarray] = []
        self.observation_dim = 0

    # Errors -------------------------------------------------------------------------------

    def _raised(self, call: str, error: Exception) -> TrpoTfError:
        if self.plugin and call.startswith("factory(**") and isinstance(error, TypeError):
            # A value of the wrong type in env.kwargs: the config's, worded as make_env_fn does.
            return ConfigError(
                f"env.kwargs: {describe_plugin(registry.ENVS, self.env_id)} could not be made "
                f"with {brief(self.kwargs)}: {one_line(error)}; fix or remove those env.kwargs"
            )
        if self.plugin:
            return plugin_raised(ENV_KEY, registry.ENVS, self.env_id, call, error)
        return env_raised(self.env_id, call, error, 0, hint="fix the environment")

    def _broke(self, detail: str) -> TrpoTfError:
        return plugin_broke(ENV_KEY, registry.ENVS, self.env_id, "EnvFactory", detail)

    def _call(self, call: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except TrpoTfError:
            raise
        except Exception as error:  # noqa: BLE001 - the env's failure, named
            raise self._raised(call, error) from error

    # Make -------------------------------------------------------------------------------

    def make(self, config: ExperimentConfig) -> None:
        """Make the env as training does: a plug-in's factory twice, a gymnasium id once."""
        if not self.plugin:
            env_fn = make_env_fn(self.env_id, self.kwargs, config.env.max_episode_steps)
            self.envs.append(env_fn())  # ConfigError for a gymnasium id, as in training
            self.observation_dim = int(np.prod(self.envs[0].observation_space.shape))
            return
        factory = registry.load(registry.ENVS, self.env_id)
        # Unknown keys are ConfigErrors naming the closest key, as in training.
        make_env_fn(self.env_id, self.kwargs, config.env.max_episode_steps)
        call = "factory(**env.kwargs)" if self.kwargs else "factory()"
        for _ in range(2):
            env = self._call(call, factory, **self.kwargs)
            if isinstance(env, gym.Env):
                self.envs.append(env)
                continue
            what = f"the class {env.__name__}" if isinstance(env, type) else type(env).__name__
            raise self._broke(
                f"{call} returned {what}, not a gymnasium.Env instance; return a new env each call"
            )
        first, second = self.envs
        if first is second or first.unwrapped is second.unwrapped:
            raise self._broke(
                f"{call} returned the same {type(first.unwrapped).__name__} object on two calls; "
                "it must return a new environment each call (it is called once per "
                "env.n_envs slot)"
            )
        self.observation_dim = self._flat_width(first.observation_space)

    def _flat_width(self, space: gym.Space) -> int:
        try:
            return int(gym.spaces.flatdim(space))
        except Exception as error:  # noqa: BLE001 - an unflattenable space
            raise self._broke(
                f"observation_space {space} does not flatten to a vector ({error}); use Box, "
                "Discrete, MultiDiscrete, MultiBinary, or a Dict/Tuple of them"
            ) from error

    @property
    def action_space(self) -> gym.Space:
        return self.envs[0].action_space

    @property
    def env_observation_space(self) -> gym.Space:
        """The env's own observation space, before the flattening training adds."""
        from trpo_tf.envs.factory import _FlattenedForTraining

        env = self.envs[0]
        inner = env.env if isinstance(env, _FlattenedForTraining) else env
        return inner.observation_space

    # Reset and step -----------------------------------------------------------------------

    def _flat(self, env: gym.Env, observation: Any, call: str) -> np.ndarray:
        """``observation`` as the ``[observation_dim]`` float64 vector training stores."""
        if not self.plugin:  # made by make_env_fn: already flattened
            row = np.asarray(observation, np.float64).reshape(-1)
        else:
            try:
                row = np.asarray(gym.spaces.flatten(env.observation_space, observation))
                row = row.astype(np.float64).reshape(-1)
            except Exception as error:  # noqa: BLE001 - not an observation of its space
                raise self._broke(
                    f"{call} returned an observation ({brief(observation)}) that does not "
                    f"flatten in its observation_space {env.observation_space}: "
                    f"{type(error).__name__}: {error}"
                ) from error
        if row.shape != (self.observation_dim,):
            raise self._broke(
                f"{call} returned an observation of {row.size} numbers; observation_space "
                f"{env.observation_space} has {self.observation_dim}"
            )
        return row

    def reset(self) -> None:
        """Reset every env with the run's seed (and the next ones); keep the observations."""
        for index, env in enumerate(self.envs):
            call = f"reset(seed={self.seed + index})"
            result = self._call(call, env.reset, seed=self.seed + index)
            if self.plugin and not (isinstance(result, tuple) and len(result) == 2):
                raise self._broke(
                    f"{call} returned {brief(result)}; reset() must return (observation, info)"
                )
            self.rows.append(self._flat(env, result[0], call))

    @property
    def observations(self) -> np.ndarray:
        """``[BATCH, observation_dim]`` float32: the real observations, repeated."""
        rows = np.stack(self.rows)
        return np.resize(rows, (BATCH, rows.shape[1])).astype(np.float32)

    def step(self, env_actions: np.ndarray) -> None:
        """Step a plug-in's envs once with the head's env actions and check the results.

        A gymnasium id is not stepped: it is not a plug-in, and training checks every
        step it takes anyway.
        """
        if not self.plugin:
            return
        for index, env in enumerate(self.envs):
            result = self._call("step(action)", env.step, env_actions[index])
            if not (isinstance(result, tuple) and len(result) == 5):
                raise self._broke(
                    f"step(action) returned {brief(result)}; it must return (observation, "
                    "reward, terminated, truncated, info)"
                )
            observation, reward, terminated, truncated, _ = result
            if not is_number(reward):
                raise self._broke(
                    f"step(action) returned a reward of type {type(reward).__name__} "
                    f"({brief(reward)}); it must be an int or float"
                )
            for label, flag in (("terminated", terminated), ("truncated", truncated)):
                if not isinstance(flag, bool | np.bool_):
                    raise self._broke(
                        f"step(action) returned {label} of type {type(flag).__name__} "
                        f"({brief(flag)}); it must be a bool"
                    )
            self._flat(env, observation, "step(action)")

    def close(self, failing: bool) -> None:
        """Close every env; a plug-in's failure to close is an error unless one is raised."""
        first: TrpoTfError | None = None
        for env in self.envs:
            try:
                env.close()
            except Exception as error:  # noqa: BLE001 - named below, or dropped when failing
                if first is None and self.plugin:
                    first = self._raised("close()", error)
                    first.__cause__ = error
        self.envs = []
        if first is not None and not failing:
            raise first


@contextlib.contextmanager
def probe_envs(config: ExperimentConfig) -> Iterator[EnvProbe]:
    probe = EnvProbe(config)
    failing = True
    try:
        probe.make(config)
        probe.reset()
        yield probe
        failing = False
    finally:
        probe.close(failing)


def brief(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
