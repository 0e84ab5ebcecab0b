"""``check_env_factory``: an environment factory against the EnvFactory contract."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env


def _fail(context: str, check: str, detail: str) -> None:
    raise AssertionError(f"{context}: {check}: {detail}")


def check_env_factory(
    factory: Callable[..., Any], *, steps: int = 200, seed: int = 0, **kwargs: Any
) -> None:
    """Checks a ``trpo_tf.envs`` factory against the EnvFactory contract.

    Calls ``factory(**kwargs)`` (as ``env.kwargs`` in an experiment would) and checks:

    * it returns a ``gymnasium.Env`` (a new one per call: the vector env calls it once
      per slot);
    * ``gymnasium.utils.env_checker.check_env(env, skip_render_check=True)`` passes;
    * the observation space flattens to a numeric vector (trpo_tf flattens observations);
    * ``reset(seed=...)`` and ``steps`` random ``step`` calls (resetting after each episode
      end) return observations inside the observation space and finite float rewards,
      and the same seed reproduces the same trajectory.

    Args:
        factory: the entry-point object, ``factory(**kwargs) -> gymnasium.Env``.
        steps: random steps to take.
        seed: seeds ``reset`` and the action space.
        **kwargs: passed to the factory.

    Raises:
        AssertionError: a check failed; the message names the check.
    """
    name = getattr(factory, "__qualname__", None) or repr(factory)
    context = f"check_env_factory({name})"
    envs = []
    try:
        for _ in range(2):
            try:
                envs.append(factory(**kwargs))
            except Exception as error:
                raise AssertionError(
                    f"{context}: factory(**{kwargs}) raised {type(error).__name__}: {error}"
                ) from error
        env, other = envs
        if isinstance(env, type):
            _fail(
                context,
                "returns gymnasium.Env",
                f"returned the class {env.__name__}, not an instance; return {env.__name__}(...)",
            )
        if not isinstance(env, gym.Env):
            _fail(context, "returns gymnasium.Env", f"got {type(env).__name__}")
        if env is other:
            _fail(context, "a new env per call", "two calls returned the same object")
        _check_spaces(context, env)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_env(env, skip_render_check=True)
        except Exception as error:
            raise AssertionError(
                f"{context}: gymnasium check_env failed: {type(error).__name__}: {error}"
            ) from error
        first = _rollout(context, env, steps, seed)
        second = _rollout(context, other, steps, seed)
        for (obs_a, reward_a), (obs_b, reward_b) in zip(first, second, strict=True):
            if not (np.array_equal(obs_a, obs_b) and reward_a == reward_b):
                _fail(
                    context,
                    "seeded reset reproduces the trajectory",
                    "two envs reset with the same seed and given the same actions diverged",
                )
    finally:
        for env in envs:
            # Only instances: close() on a returned class (a common slip) would raise
            # a TypeError that hides the check's own message.
            if isinstance(env, gym.Env):
                env.close()


def _check_spaces(context: str, env: gym.Env) -> None:
    space = env.observation_space
    try:
        flat = gym.spaces.flatten_space(space)
    except Exception as error:
        raise AssertionError(
            f"{context}: observation space {space} cannot be flattened to a vector: {error}"
        ) from error
    if not isinstance(flat, gym.spaces.Box) or not np.issubdtype(flat.dtype, np.number):
        _fail(context, "observation space", f"{space} does not flatten to a numeric Box")
    if not isinstance(env.action_space, gym.Space):
        _fail(context, "action space", f"{env.action_space!r} is not a gymnasium Space")


def _rollout(context: str, env: gym.Env, steps: int, seed: int) -> list[tuple[np.ndarray, float]]:
    env.action_space.seed(seed)
    observation, info = env.reset(seed=seed)
    trajectory = [(gym.spaces.flatten(env.observation_space, observation), 0.0)]
    if not env.observation_space.contains(observation):
        _fail(context, "reset()", f"observation {observation!r} is not in {env.observation_space}")
    if not isinstance(info, dict):
        _fail(context, "reset()", f"info must be a dict, got {type(info).__name__}")
    for step in range(steps):
        action = env.action_space.sample()
        observation, reward, terminated, truncated, info = env.step(action)
        if not env.observation_space.contains(observation):
            _fail(
                context,
                "step()",
                f"observation {observation!r} at step {step} is not in {env.observation_space}",
            )
        if not isinstance(reward, int | float | np.integer | np.floating) or not np.isfinite(
            reward
        ):
            _fail(context, "step()", f"reward {reward!r} at step {step} is not a finite number")
        for flag_name, flag in (("terminated", terminated), ("truncated", truncated)):
            if not isinstance(flag, bool | np.bool_):
                _fail(context, "step()", f"{flag_name} must be a bool, got {flag!r}")
        trajectory.append((gym.spaces.flatten(env.observation_space, observation), float(reward)))
        if terminated or truncated:
            observation, info = env.reset()
    return trajectory
