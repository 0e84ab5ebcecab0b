"""The policy as plain numpy: what rollout workers run, without TensorFlow.

This module imports only numpy, gymnasium and TensorFlow-free parts of trpo_tf,
so a worker process that uses it never loads TensorFlow (seconds of start-up and
hundreds of MB per process). :class:`~trpo_tf.rollout.numpy_actor.NumpyActor`
uses the same forward pass on the learner.
"""

from __future__ import annotations

import copy
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.normalization import ObservationNormalizer

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}

Layer = tuple[str, np.ndarray, np.ndarray]
"""``(activation name, kernel [in, out] float32, bias [out] float32)``."""

APPEND_INPUT = "linear+input"
"""Activation name of a linear layer that also passes its input on: ``[h W + b, h]``."""


def mlp_forward(layers: list[Layer] | tuple[Layer, ...], observations: np.ndarray) -> np.ndarray:
    """``h ← act(h @ kernel + bias)`` through ``layers``; ``[n, in]`` → ``[n, out]``.

    A layer named :data:`APPEND_INPUT` outputs ``[h @ kernel + bias, h]``.
    """
    hidden = np.asarray(observations, np.float32)
    for activation, kernel, bias in layers:
        if activation == APPEND_INPUT:
            hidden = np.concatenate([hidden @ kernel + bias, hidden], axis=-1)
        else:
            hidden = ACTIVATIONS[activation](hidden @ kernel + bias)
    return hidden


def dumps_by_value(obj: Any) -> bytes:
    """Pickle ``obj`` with its class's code included (cloudpickle by value).

    The numpy samplers of the built-in heads live next to their TensorFlow heads;
    pickled by reference, unpickling one would import that module and TensorFlow
    with it. By value, only what the sampler's methods use (numpy) is imported.
    """
    import cloudpickle  # a dependency of tensorflow-probability; learner side only

    module = sys.modules.get(type(obj).__module__)
    by_value = module is not None and module.__name__ not in ("__main__", "builtins")
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(obj)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


@dataclass(frozen=True)
class PolicySnapshot:
    """A picklable copy of π_θ as one version: all a rollout worker needs to act.

    Attributes:
        layers: the MLP as ``(activation, kernel, bias)`` triples.
        sampler: the head's numpy sampler, pickled by value (:func:`dumps_by_value`).
        version: the learner's policy version these weights are.
        observation_normalizer: a frozen copy of the observation statistics
            (None: observations are used as they come).
    """

    layers: tuple[Layer, ...]
    sampler: bytes
    version: int = 0
    observation_normalizer: ObservationNormalizer | None = None

    def with_version(
        self, version: int, observation_normalizer: ObservationNormalizer | None
    ) -> PolicySnapshot:
        """The same weights labelled ``version``, with a copy of the normalizer."""
        return PolicySnapshot(
            self.layers, self.sampler, int(version), copy.deepcopy(observation_normalizer)
        )


class SnapshotPolicy:
    """Acts with a :class:`PolicySnapshot`: β of the samples a worker collects."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.sampler = pickle.loads(snapshot.sampler)
        self.normalizer = snapshot.observation_normalizer

    def normalize(self, raw_observations: np.ndarray) -> np.ndarray:
        """``[n, obs_dim]`` raw → as β sees them (float32); never updates the stats."""
        if self.normalizer is None:
            return np.asarray(raw_observations, np.float32)
        return self.normalizer(raw_observations, update=False)

    def sample(
        self, observations: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``observations [n, obs_dim]`` (normalized) → (actions, log β(a|s) [n], params)."""
        return self.sampler.sample(mlp_forward(self.snapshot.layers, observations), rng)


class EnvActionMap:
    """Sampled actions ``[n, *action_shape]`` → what ``env.step`` takes, per env.

    The numpy twin of the built-in heads' ``to_env_action``, derived from the action
    space: Box actions are clipped to the bounds (again after the cast, since
    rounding can step outside); Discrete/MultiDiscrete indices are offset by
    ``start``; MultiBinary is cast. A sampler that defines ``to_env_action``
    itself is used instead.
    """

    def __init__(self, space: gym.Space, sampler: Any = None) -> None:
        self.space = space
        self.custom = getattr(sampler, "to_env_action", None)

    def __call__(self, actions: np.ndarray) -> np.ndarray:
        if self.custom is not None:
            return np.asarray(self.custom(actions))
        space, actions = self.space, np.asarray(actions)
        n = actions.shape[0]
        if isinstance(space, gym.spaces.Box):
            inside = np.clip(actions, space.low.reshape(-1), space.high.reshape(-1))
            inside = inside.astype(space.dtype).reshape((n, *space.shape))
            return np.clip(inside, space.low, space.high).astype(space.dtype)
        if isinstance(space, gym.spaces.Discrete):
            return actions.astype(np.int64) + int(space.start)
        if isinstance(space, gym.spaces.MultiDiscrete):
            shifted = actions.astype(np.int64).reshape((n, *space.shape)) + space.start
            return shifted.astype(space.dtype)
        if isinstance(space, gym.spaces.MultiBinary):
            return actions.reshape((n, *space.shape)).astype(space.dtype)
        raise TypeError(f"no numpy action mapping for action space {space}")
