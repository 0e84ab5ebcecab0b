"""Partially observed classic tasks: a flat Box observation with components removed.

Built-in ``trpo_tf.envs`` plug-ins for recurrent policies (``policy.network.name:
lstm`` or ``gru``) and their benchmark (``benchmarks/recurrent.py``). Each hides the
velocities of a classic-control task, so one observation no longer tells the state:

* ``cartpole_masked``: CartPole-v1 showing only ``[cart position, pole angle]``
  (indices 0 and 2); the cart velocity and pole angular velocity are removed. A pole
  at the same angle may be falling or recovering, and the push that balances one
  topples the other: a memoryless policy can only react to the angle and loses the
  pole early, while a policy that remembers the previous observations can take
  their differences as velocities.
* ``pendulum_masked``: Pendulum-v1 showing only ``[cos θ, sin θ]`` (indices 0 and
  1); the angular velocity θ̇ is removed. Swinging up needs torque in the direction
  of motion (pumping energy) and slowing down near the top needs it against the
  motion; from the angle alone the two cases look the same, so a memoryless policy
  cannot both swing up and balance.
* ``masked_observation``: the general wrapper, any gymnasium id with a 1-D Box
  observation and the indices to keep, e.g. ``env: {id: masked_observation, kwargs:
  {id: Acrobot-v1, keep: [0, 1, 2, 3]}}``.

Both named tasks pass extra ``env.kwargs`` on to ``gymnasium.make``
(``max_episode_steps``, ``render_mode``, the env's own keywords).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.config.contracts import check_kwargs
from trpo_tf.envs.factory import MAKE_KEYWORDS, _gymnasium_creator
from trpo_tf.errors import ConfigError

CARTPOLE_KEEP = (0, 2)
"""CartPole-v1: cart position, pole angle (cart velocity 1, pole angular velocity 3 hidden)."""

PENDULUM_KEEP = (0, 1)
"""Pendulum-v1: cos θ, sin θ (angular velocity 2 hidden)."""


class MaskedObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Shows only the components ``keep`` of a 1-D Box observation, in that order.

    ``observation_space`` is the Box of the kept components' ``low``/``high``, with
    the wrapped space's dtype; an observation ``[obs_dim]`` becomes ``[len(keep)]``.
    (Recording its arguments puts it in ``env.spec``, so ``gymnasium.make(env.spec)``
    remakes the masked env.)
    """

    def __init__(self, env: gym.Env, keep: Sequence[int]) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, keep=tuple(int(i) for i in keep))
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        self.keep = np.asarray(keep, dtype=np.intp)
        self.observation_space = gym.spaces.Box(
            low=space.low[self.keep], high=space.high[self.keep], dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation)[self.keep]


def _check_id(env_id: Any) -> None:
    if not isinstance(env_id, str) or not env_id:
        raise ConfigError(
            f"env.kwargs.id: must be a gymnasium id string such as 'CartPole-v1', got {env_id!r}"
        )
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"env.kwargs.id: unknown gymnasium environment {env_id[:100]!r}{hint} — "
            "masked_observation wraps a gymnasium id with a 1-D Box observation"
        )


def _check_keep(keep: Any, space: gym.Space, env_id: str) -> tuple[int, ...]:
    """``keep`` as a tuple of indices into ``space``, or a one-line ConfigError."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ConfigError(
            f"env.kwargs.id: {env_id!r} has observation space {space}, not a 1-D Box; "
            "masked_observation keeps components of a flat Box observation only"
        )
    size = space.shape[0]
    valid = f"a non-empty list of distinct indices in 0..{size - 1} ({env_id} has {size})"
    if isinstance(keep, str | bytes) or not isinstance(keep, Sequence):
        raise ConfigError(f"env.kwargs.keep: must be {valid}, got {keep!r}")
    if not keep:
        raise ConfigError(f"env.kwargs.keep: empty; list the components to show, {valid}")
    seen: list[int] = []
    for index in keep:
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise ConfigError(
                f"env.kwargs.keep: {index!r} is not an integer index; must be {valid}"
            )
        if not 0 <= index < size:
            raise ConfigError(
                f"env.kwargs.keep: index {index} is out of range for {env_id}; must be {valid}"
            )
        if index in seen:
            raise ConfigError(
                f"env.kwargs.keep: index {index} is listed more than once; must be {valid}"
            )
        seen.append(int(index))
    return tuple(seen)


def make_masked_observation(id: str, keep: list[int], **env_kwargs: Any) -> MaskedObservation:
    """Entry point ``masked_observation``: ``gymnasium.make(id, **env_kwargs)`` showing
    only the observation components ``keep``.

    Args:
        id: a gymnasium id whose observation space is a 1-D Box (``env.kwargs.id``).
        keep: indices of the components to show, in the order shown (``env.kwargs.keep``).
        **env_kwargs: passed on to ``gymnasium.make``.

    Raises:
        ConfigError: ``id`` is not a gymnasium id, its observation space is not a 1-D
            Box, or ``keep`` is empty, not integers, out of range or repeats an index.
    """
    _check_id(id)
    try:
        creator = _gymnasium_creator(id)
    except ConfigError as error:  # a package it needs is missing: the id is env.kwargs.id
        raise ConfigError(str(error).replace("env.id:", "env.kwargs.id:", 1)) from error
    if creator is not None:  # a misspelt keyword: named with the closest one, before make
        check_kwargs(
            creator, env_kwargs, "env.kwargs", f"environment {id!r}", also_accepted=MAKE_KEYWORDS
        )
    env = gym.make(id, **env_kwargs)
    try:
        indices = _check_keep(keep, env.observation_space, id)
    except ConfigError:
        env.close()
        raise
    return MaskedObservation(env, indices)


def _fixed_task(name: str, env_kwargs: dict[str, Any]) -> None:
    for key in ("id", "keep"):
        if key in env_kwargs:
            raise ConfigError(
                f"env.kwargs.{key}: {name} fixes the env and the components it shows; "
                "remove it, or use env.id: masked_observation with env.kwargs {id, keep}"
            )


def make_cartpole_masked(**env_kwargs: Any) -> MaskedObservation:
    """Entry point ``cartpole_masked``: CartPole-v1 without its velocities (keep [0, 2])."""
    _fixed_task("cartpole_masked", env_kwargs)
    return make_masked_observation("CartPole-v1", list(CARTPOLE_KEEP), **env_kwargs)


def make_pendulum_masked(**env_kwargs: Any) -> MaskedObservation:
    """Entry point ``pendulum_masked``: Pendulum-v1 without θ̇ (keep [0, 1])."""
    _fixed_task("pendulum_masked", env_kwargs)
    return make_masked_observation("Pendulum-v1", list(PENDULUM_KEEP), **env_kwargs)
