"""Build environments by name.

A name registered in the ``trpo_tf.envs`` entry-point group wins; any other name
is treated as a gymnasium id. Observations are flattened to a 1-D float vector
(``FlattenObservation`` for Dict/Tuple/Discrete/multi-dim Box spaces).

Whatever goes wrong while an env is made is one :class:`~trpo_tf.errors.ConfigError`
line before anything runs: an unknown id, a package the env needs and does not
find, a keyword its constructor does not take (with the closest one it does), or an
exception from the constructor (naming ``env.kwargs`` when there are any).
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf import registry
from trpo_tf.config.contracts import check_kwargs
from trpo_tf.errors import ConfigError, IncompatibleSpaceError, TrpoTfError

MAKE_KEYWORDS = ("max_episode_steps", "disable_env_checker")
"""Keywords ``gymnasium.make`` takes itself, besides the env constructor's."""

_MISSING_PACKAGE = (ImportError, gym.error.DependencyNotInstalled)


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


def _gymnasium_maker(env_id: str, max_episode_steps: int | None) -> Callable[..., gym.Env]:
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        plugins = registry.names(registry.ENVS)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        extra = f" (env plug-ins installed: {', '.join(plugins)})" if plugins else ""
        raise ConfigError(
            f"env.id: unknown environment {_brief(env_id)}{hint} — use a gymnasium id or a "
            f"name from the trpo_tf.envs plug-in group{extra}"
        )
    limit = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}

    def make(**kwargs: Any) -> gym.Env:
        return gym.make(env_id, **kwargs, **limit)

    return make


def _gymnasium_creator(env_id: str) -> Callable[..., gym.Env] | None:
    """The constructor a gymnasium id names (its module imported), None when it has none.

    Raises:
        ConfigError: the module needs a package that is not installed.
    """
    entry_point = gym.spec(env_id).entry_point
    if entry_point is None or callable(entry_point):
        return entry_point
    try:
        return gym.envs.registration.load_env_creator(entry_point)
    except _MISSING_PACKAGE as error:
        raise _missing_package(env_id, error) from error
    except Exception:  # noqa: BLE001 - unreadable: gymnasium.make reports it when called
        return None


def _missing_package(env_id: str, error: BaseException) -> ConfigError:
    return ConfigError(
        f"env.id: environment {_brief(env_id)} needs a package that is not installed "
        f"({_one_line(error)}); install it, or choose another env.id"
    )


def _construction_failed(env_id: str, kwargs: Mapping[str, Any], error: Exception) -> ConfigError:
    if kwargs:
        return ConfigError(
            f"env.kwargs: environment {_brief(env_id)} could not be made with "
            f"{_brief(dict(kwargs))}: {_one_line(error)}; fix or remove those env.kwargs"
        )
    return ConfigError(
        f"env.id: environment {_brief(env_id)} could not be made: {_one_line(error)}; "
        "the error comes from the environment's constructor"
    )


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring = 3, 6, 6, 60


def _brief(value: Any, limit: int = 100) -> str:
    """``repr(value)``, at most about ``limit`` characters, without building the whole
    repr of a large (or shared, alias-built) structure first."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(error: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(error).split())
    line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


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


def make_env_fn(
    env_id: str,
    kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
) -> Callable[[], gym.Env]:
    """A zero-argument constructor of one flattened env, checked eagerly by name.

    Args:
        env_id: a ``trpo_tf.envs`` plug-in name or a gymnasium id (``env.id``).
        kwargs: keyword arguments of the env's constructor (``env.kwargs``); for a
            gymnasium id also those of ``gymnasium.make``.
        max_episode_steps: truncate episodes after this many steps
            (``env.max_episode_steps``): passed to ``gymnasium.make`` for an id, which
            replaces the registered limit; a plug-in env is wrapped in a ``TimeLimit``.
            None keeps the env's own limit.

    Raises:
        ConfigError: the name is neither a registered plug-in nor a gymnasium id, the
            env needs a package that is not installed, or its constructor's signature
            does not take a key of ``kwargs`` (naming the closest one it takes). Calling
            the returned function raises it too when the constructor fails.
    """
    kwargs = dict(kwargs or {})
    what = f"environment {_brief(env_id)}"
    if registry.has(registry.ENVS, env_id):
        maker = registry.load(registry.ENVS, env_id)
        check_kwargs(maker, kwargs, "env.kwargs", what)
        time_limit = max_episode_steps
    else:
        maker = _gymnasium_maker(env_id, max_episode_steps)
        creator = _gymnasium_creator(env_id)
        if creator is not None:
            check_kwargs(creator, kwargs, "env.kwargs", what, also_accepted=MAKE_KEYWORDS)
        time_limit = None  # gymnasium.make applies it

    def thunk() -> gym.Env:
        try:
            env = maker(**kwargs)
        except TrpoTfError:
            raise
        except _MISSING_PACKAGE as error:
            raise _missing_package(env_id, error) from error
        except Exception as error:  # noqa: BLE001 - any failure to construct is the config's
            raise _construction_failed(env_id, kwargs, error) from error
        if not isinstance(env, gym.Env):
            raise ConfigError(
                f"env.id: factory {_brief(env_id)} returned {type(env).__name__}, "
                "not a gymnasium.Env"
            )
        if time_limit is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps=time_limit)
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
