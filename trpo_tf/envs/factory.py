"""Build environments by name.

A name registered in the ``trpo_tf.envs`` entry-point group wins; any other name
is treated as a gymnasium id. Observations are flattened to a 1-D float vector
(``FlattenObservation`` for Dict/Tuple/Discrete/multi-dim Box spaces).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
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
    """

    name: str
    observation_dim: int
    action_space: gym.Space
    observation_space: gym.Space


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


def _flatten_observations(env: gym.Env) -> gym.Env:
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return env
    try:
        return gym.wrappers.FlattenObservation(env)
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


def make_vector_env(
    env_fn: Callable[[], gym.Env], n_envs: int, vector: str
) -> gym.vector.VectorEnv:
    """``n_envs`` copies in a Sync/AsyncVectorEnv with same-step autoreset.

    With ``AutoresetMode.SAME_STEP`` a finished sub-env is reset inside the step
    that ended it: the returned observation is the reset one and the true last
    observation is in ``info["final_obs"]`` (needed to bootstrap truncations).
    """
    cls = gym.vector.AsyncVectorEnv if vector == "async" else gym.vector.SyncVectorEnv
    return cls([env_fn] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def describe(env_id: str, env_fn: Callable[[], gym.Env]) -> EnvSpec:
    """Build one env to read its spaces, then close it."""
    env = env_fn()
    try:
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.number):
            raise IncompatibleSpaceError(f"env '{env_id}': unsupported observation space {space}")
        return EnvSpec(env_id, int(np.prod(space.shape)), env.action_space, space)
    finally:
        env.close()
