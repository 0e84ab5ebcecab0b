"""Checks on what environments return, shared by every place that steps them.

The synchronous sampler, the asynchronous rollout workers and evaluation all go
through these, so that one faulty environment reads the same everywhere: one line
(a :class:`~trpo_tf.errors.TrpoTfError`) naming the environment, the call and
the step. This module must not import TensorFlow: rollout workers use it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.errors import EnvRuntimeError, NonFiniteEnvError, TrpoTfError, one_line

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Observations and rewards are stored, and learned from, in float32."""

_NUMBER_TYPES = (int, float, np.integer, np.floating, np.bool_)


def env_raised(
    env_name: str, call: str, error: BaseException, step: int, where: str = "", hint: str = ""
) -> EnvRuntimeError:
    """The one-line error for an env whose ``call`` (``"step()"``, ``"reset()"``) raised.

    Args:
        env_name: the ``env.id``.
        call: what was called.
        error: what it raised.
        step: env steps taken so far (over all envs).
        where: which copy, e.g. ``"env index 2"``.
        hint: how to fix it (a default suggestion when empty).
    """
    place = f" ({where})" if where else ""
    hint = hint or (
        "fix the environment, or use runner.kind: async, whose workers rebuild an env "
        "that raises only now and then"
    )
    return EnvRuntimeError(
        f"environment '{env_name}'{place} raised in {call} at env step {step}: "
        f"{one_line(error)}; {hint}"
    )


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number an env may return as its reward."""
    if isinstance(value, _NUMBER_TYPES):
        return True
    return isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "biuf"


def _shown(value: object, limit: int) -> str:
    """``repr(value)`` cut to ``limit`` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bad_reward(env_name: str, reward: object, step: int, where: str = "") -> EnvRuntimeError:
    """The one-line error for a reward that is not a number (a ``str``, a list, None)."""
    place = f" ({where})" if where else ""
    return EnvRuntimeError(
        f"environment '{env_name}'{place} returned a reward of type {type(reward).__name__} "
        f"({_shown(reward, 40)}) from step() at env step {step}; step() must return the "
        "reward as an int or float: fix the environment"
    )


def check_reward_array(env_name: str, rewards: np.ndarray, step: int) -> np.ndarray:
    """``rewards`` ``[n_envs]`` from a vector env, or the error if they are not numbers."""
    rewards = np.asarray(rewards)
    if rewards.dtype.kind not in "biuf":
        bad = next((r for r in rewards.reshape(-1) if not is_number(r)), rewards)
        raise bad_reward(env_name, bad.item() if isinstance(bad, np.generic) else bad, step)
    return rewards


def flat_observation(
    observation: Any, size: int | None, env_name: str, step: int, where: str
) -> np.ndarray:
    """One env's observation as a flat float64 vector, or the one-line error.

    Args:
        observation: what ``reset()``/``step()`` returned as the observation.
        size: the number of values every observation of this env has (None: any).
        env_name: the ``env.id``.
        step: env steps taken so far.
        where: which copy, e.g. ``"rollout worker 0, env 1"``.

    Raises:
        EnvRuntimeError: the observation is not numeric (None, a str, a dict) or has
            another number of values than ``size``.
    """
    try:
        array = np.asarray(observation)
        if observation is None or array.dtype.kind not in "biuf":
            raise TypeError
        flat = array.astype(np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise EnvRuntimeError(
            f"environment '{env_name}' ({where}) returned an observation of type "
            f"{type(observation).__name__} ({_shown(observation, 60)}) at env step {step}; "
            "observations must be numeric arrays of the observation space's shape: fix the "
            "environment"
        ) from None
    if size is not None and flat.size != size:
        raise EnvRuntimeError(
            f"environment '{env_name}' ({where}) returned an observation of {flat.size} "
            f"values at env step {step}, but its observation space has {size}; fix the "
            "environment or its observation_space"
        )
    return flat


class RewardTypeCheck(gym.Wrapper):
    """Refuses a reward that is not a number before a vector env's float buffer
    silently converts it (a ``str`` '2.5' would become 2.5). Used by evaluation; its
    step count is this env's own."""

    def __init__(self, env: gym.Env, env_name: str) -> None:
        super().__init__(env)
        self._env_name = env_name
        self._steps = 0

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, Any]:
        result = self.env.step(action)
        self._steps += 1
        if not is_number(result[1]):
            raise bad_reward(self._env_name, result[1], self._steps, "evaluation")
        return result


class NonFiniteGuard:
    """Stops on env values that are not finite as stored, or replaces them when asked to.

    Observations and rewards are stored and learned from in float32, so the check is
    made in float32: a value that is finite in float64 but beyond float32's range
    (``|x| > 3.4e38``) would be stored as ±inf and counts as non-finite. With
    ``clip`` (``env.clip_nonfinite``) NaN becomes 0 and ±inf or an out-of-range
    value becomes ±``bound``; :attr:`replaced` counts the values replaced.
    """

    def __init__(self, env_name: str, clip: bool, bound: float = 1e6, context: str = "") -> None:
        self.env_name = env_name
        self.clip = clip
        self.bound = bound
        self.context = context  # e.g. "rollout worker 1", named before the env index
        self.replaced = 0

    def __call__(
        self, values: np.ndarray, what: str, step: int, env_ids: np.ndarray | None = None
    ) -> np.ndarray:
        """Check ``values`` ``[n, ...]``; returns them (cleaned when clipping).

        Args:
            values: one row per env (an array).
            what: named in the error ("observation", "reward").
            step: env steps so far, named in the error.
            env_ids: ``[n]`` the env index of each row, when rows are not envs 0..n-1.
        """
        kind = values.dtype.kind
        if kind in "biu":  # every int64/uint64 lies within float32's range
            return values
        if kind != "f":
            raise EnvRuntimeError(
                f"environment '{self.env_name}' returned {what}s of dtype {values.dtype} at "
                f"env step {step}; observations and rewards must be numbers: fix the environment"
            )
        # float32/float16 values are storable exactly when finite; wider ones must also fit.
        ok = np.isfinite(values) if values.dtype.itemsize <= 4 else np.abs(values) <= FLOAT32_MAX
        if ok.all():
            return values
        if not self.clip:
            raise self._error(values, ok, what, step, env_ids)
        self.replaced += int((~ok).sum())
        replacement = np.where(np.isnan(values), 0.0, np.copysign(self.bound, values))
        return np.where(ok, values, replacement).astype(values.dtype, copy=False)

    def _error(
        self,
        values: np.ndarray,
        ok: np.ndarray,
        what: str,
        step: int,
        env_ids: np.ndarray | None,
    ) -> NonFiniteEnvError:
        first = tuple(np.argwhere(~ok)[0])
        value = float(values[first])
        env = first[0] if env_ids is None else env_ids[first[0]]
        where = f"{self.context}, env index {env}" if self.context else f"env index {env}"
        prefix = f"environment '{self.env_name}' ({where}) returned"
        if np.isfinite(value):
            article = "an" if what[0] in "aeiou" else "a"
            return NonFiniteEnvError(
                f"{prefix} {article} {what} of {value:.4g} at env step {step}, beyond "
                f"float32's range (±{FLOAT32_MAX:.4g}) in which it is stored (it would become "
                f"inf, a non-finite {what}); scale it down in the environment or set "
                f"env.clip_nonfinite: true to replace out-of-range values by ±{self.bound:g}"
            )
        return NonFiniteEnvError(
            f"{prefix} a non-finite {what} ({value}) at env step {step}; fix the environment "
            "or set env.clip_nonfinite: true to replace NaN/inf"
        )


def in_env(error: TrpoTfError, env_name: str, step: int) -> TrpoTfError:
    """``error`` (raised away from the env, e.g. by a normalizer) with the env and step named."""
    return type(error)(f"environment '{env_name}' at env step {step}: {error}")
