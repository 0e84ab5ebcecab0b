"""Build environments by name.

A name registered in the ``trpo_tf.envs`` entry-point group wins; any other name
is treated as a gymnasium id. Observations are flattened to a 1-D float vector
(``FlattenObservation`` for Dict/Tuple/Discrete/multi-dim Box spaces).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf import registry
from trpo_tf.errors import ConfigError, IncompatibleSpaceError


@dataclass(frozen=True)
class EnvSpec:
    """What the rest of the library needs to know about an environment.

    Attributes:
        name: the ``env.id`` it was built from.
        observation_dim: length of the flattened observation vector.
        action_space: the (unflattened) action space.
        observation_space: the flattened observation space.
        env_observation_space: the observation space as the env itself returns
            observations, before flattening (None: not recorded, as for a spec built
            by hand; the same as ``observation_space`` for a 1-D Box).
    """

    name: str
    observation_dim: int
    action_space: gym.Space
    observation_space: gym.Space
    env_observation_space: gym.Space | None = None


def _gymnasium_maker(env_id: str) -> Callable[..., gym.Env]:
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        plugins = registry.names(registry.ENVS)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        extra = f" (env plug-ins installed: {', '.join(plugins)})" if plugins else ""
        raise ConfigError(
            f"env.id: unknown environment '{env_id}'{hint} — use a gymnasium id or a name "
            f"from the trpo_tf.envs plug-in group{extra}"
        )

    def make(**kwargs: Any) -> gym.Env:
        return gym.make(env_id, **kwargs)

    return make


class _FlattenedForTraining(gym.wrappers.FlattenObservation):
    """The ``FlattenObservation`` trpo_tf adds: the env's own space is the inner one.

    (A ``FlattenObservation`` the env's factory applied itself is part of the env.)
    """


def _flatten_observations(env: gym.Env) -> gym.Env:
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return env
    try:
        return _FlattenedForTraining(env)
    except Exception as error:  # noqa: BLE001 - any failure means unsupported space
        raise IncompatibleSpaceError(
            f"env '{env.spec.id if env.spec else env}': observation space {space} cannot be "
            f"flattened to a vector ({error})"
        ) from error


def make_env_fn(env_id: str, kwargs: Mapping[str, Any] | None = None) -> Callable[[], gym.Env]:
    """A zero-argument constructor of one flattened env, checked eagerly by name.

    Raises:
        ConfigError: the name is neither a registered plug-in nor a gymnasium id.
    """
    kwargs = dict(kwargs or {})
    if registry.has(registry.ENVS, env_id):
        maker = registry.load(registry.ENVS, env_id)
    else:
        maker = _gymnasium_maker(env_id)

    def thunk() -> gym.Env:
        try:
            env = maker(**kwargs)
        except TypeError as error:
            raise ConfigError(
                f"env.kwargs: environment '{env_id}' rejected {kwargs}: {error}"
            ) from error
        if not isinstance(env, gym.Env):
            raise ConfigError(
                f"env.id: factory '{env_id}' returned {type(env).__name__}, not a gymnasium.Env"
            )
        return _flatten_observations(env)

    return thunk


def check_distinct_envs(envs: Sequence[gym.Env], env_id: str) -> None:
    """The slots of a vector env hold distinct environments.

    A factory that returns one cached instance on every call would have all slots
    step that one environment, which trains on garbage without any error.

    Raises:
        ConfigError: two slots share an environment object, naming ``env_id``.
    """
    seen: set[int] = set()
    for env in envs:
        identity = id(env.unwrapped)
        if identity in seen:
            raise ConfigError(
                f"env.id: the factory of environment '{env_id}' returned the same "
                f"{type(env.unwrapped).__name__} object on two calls; it must return a new "
                "environment each call (it is called once per env.n_envs slot)"
            )
        seen.add(identity)


def make_vector_env(
    env_fn: Callable[[], gym.Env], n_envs: int, vector: str, env_id: str = "env"
) -> gym.vector.VectorEnv:
    """``n_envs`` copies in a Sync/AsyncVectorEnv with same-step autoreset.

    With ``AutoresetMode.SAME_STEP`` a finished sub-env is reset inside the step
    that ended it: the returned observation is the reset one and the true last
    observation is in ``info["final_obs"]`` (needed to bootstrap truncations).

    Raises:
        ConfigError: ``env_fn`` returned one environment object for two slots
            (checked for ``sync``; ``async`` slots live in separate processes, and
            the asynchronous runners' workers check their own envs).
    """
    cls = gym.vector.AsyncVectorEnv if vector == "async" else gym.vector.SyncVectorEnv
    envs = cls([env_fn] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    if isinstance(envs, gym.vector.SyncVectorEnv):
        check_distinct_envs(envs.envs, env_id)
    return envs


def describe(env_id: str, env_fn: Callable[[], gym.Env]) -> EnvSpec:
    """Build one env to read its spaces, then close it."""
    env = env_fn()
    try:
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.number):
            raise IncompatibleSpaceError(f"env '{env_id}': unsupported observation space {space}")
        own = env.env.observation_space if isinstance(env, _FlattenedForTraining) else space
        return EnvSpec(env_id, int(np.prod(space.shape)), env.action_space, space, own)
    finally:
        env.close()
