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


RecurrentCell = tuple[str, np.ndarray, np.ndarray, np.ndarray]
"""``(kind, kernel, recurrent_kernel, bias)`` of a Keras recurrent cell, float32.

``kind`` ``"lstm"``: kernel ``[D, 4H]``, recurrent kernel ``[H, 4H]``, bias ``[4H]``,
gates in Keras' order i, f, c, o. ``"gru"`` (``reset_after=True``): kernel ``[D, 3H]``,
recurrent kernel ``[H, 3H]``, bias ``[2, 3H]`` (input bias, recurrent bias), gates z, r, h.
"""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e^−x), written as (1 + tanh(x/2)) / 2 so no exp overflows."""
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def lstm_forward(
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    inputs: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of Keras' ``LSTMCell`` (tanh, sigmoid gates): ``[n, D]``, ``[n, H]`` ×2.

    z = x K + h R + b split into (i, f, g, o);  c' = σ(f)·c + σ(i)·tanh(g);
    h' = σ(o)·tanh(c').  Returns ``(h', c')``, each ``[n, H]``.
    """
    z = inputs @ kernel + h @ recurrent_kernel + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    new_c = sigmoid(z_f) * c + sigmoid(z_i) * np.tanh(z_c)
    return sigmoid(z_o) * np.tanh(new_c), new_c


def gru_forward(
    kernel: np.ndarray,
    recurrent_kernel: np.ndarray,
    bias: np.ndarray,
    inputs: np.ndarray,
    h: np.ndarray,
) -> np.ndarray:
    """One step of Keras' ``GRUCell(reset_after=True)``: ``[n, D]``, ``[n, H]`` → ``[n, H]``.

    (x_z, x_r, x_h) = x K + b₀;  (u_z, u_r, u_h) = h R + b₁;
    z = σ(x_z + u_z);  r = σ(x_r + u_r);  ĥ = tanh(x_h + r·u_h);  h' = z·h + (1 − z)·ĥ.
    """
    x_z, x_r, x_h = np.split(inputs @ kernel + bias[0], 3, axis=-1)
    u_z, u_r, u_h = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
    z = sigmoid(x_z + u_z)
    r = sigmoid(x_r + u_r)
    candidate = np.tanh(x_h + r * u_h)
    return z * h + (1.0 - z) * candidate


def cell_forward(
    cell: RecurrentCell, inputs: np.ndarray, state: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One step of ``cell``: ``[n, D]`` and state → (``h' [n, H]``, new state).

    The state is ``(h, c)`` for an LSTM and ``(h,)`` for a GRU.
    """
    kind, kernel, recurrent_kernel, bias = cell
    inputs = np.asarray(inputs, kernel.dtype)
    if kind == "lstm":
        h, c = lstm_forward(kernel, recurrent_kernel, bias, inputs, state[0], state[1])
        return h, (h, c)
    if kind == "gru":
        h = gru_forward(kernel, recurrent_kernel, bias, inputs, state[0])
        return h, (h,)
    raise ValueError(f"unknown recurrent cell kind {kind!r} (lstm or gru)")


def cell_state_sizes(cell: RecurrentCell) -> tuple[int, ...]:
    """Widths of the state tensors: ``(H, H)`` for an LSTM, ``(H,)`` for a GRU."""
    units = int(cell[2].shape[0])
    return (units, units) if cell[0] == "lstm" else (units,)


def recurrent_forward(
    cell: RecurrentCell,
    layers: list[Layer] | tuple[Layer, ...],
    observations: np.ndarray,
    state: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """``RecurrentTorso.step`` in numpy: the cell, then the output MLP ``layers``.

    ``[n, D]`` and state ``([n, H], ...)`` → (outputs ``[n, W]``, new state).
    """
    hidden, new_state = cell_forward(cell, observations, state)
    return mlp_forward(layers, hidden), new_state


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
        cell: for a recurrent policy (``lstm``, ``gru``) its cell, run before
            ``layers`` (which are then the output MLP); None for a memoryless one.
    """

    layers: tuple[Layer, ...]
    sampler: bytes
    version: int = 0
    observation_normalizer: ObservationNormalizer | None = None
    cell: RecurrentCell | None = None

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state from step to step."""
        return self.cell is not None

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Widths of the state tensors; ``()`` for a memoryless policy."""
        return () if self.cell is None else cell_state_sizes(self.cell)

    def with_version(
        self, version: int, observation_normalizer: ObservationNormalizer | None
    ) -> PolicySnapshot:
        """The same weights labelled ``version``, with a copy of the normalizer."""
        return PolicySnapshot(
            self.layers,
            self.sampler,
            int(version),
            copy.deepcopy(observation_normalizer),
            self.cell,
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

    @property
    def recurrent(self) -> bool:
        """Whether β carries a state (then act with :meth:`step`, not :meth:`sample`)."""
        return self.snapshot.recurrent

    def initial_state(self, n: int) -> tuple[np.ndarray, ...]:
        """Zeros ``[n, size]`` per state tensor (an episode's start); ``()`` if memoryless."""
        return tuple(np.zeros((n, size), np.float32) for size in self.snapshot.state_sizes)

    def sample(
        self, observations: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``observations [n, obs_dim]`` (normalized) → (actions, log β(a|s) [n], params)."""
        if self.snapshot.cell is not None:
            raise TypeError("a recurrent policy acts with step(observations, state, rng)")
        return self.sampler.sample(mlp_forward(self.snapshot.layers, observations), rng)

    def step(
        self,
        observations: np.ndarray,
        state: tuple[np.ndarray, ...],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """A recurrent β's step: ``[n, obs_dim]`` and state ``([n, size], ...)`` →
        (actions, log β(a|s, state) ``[n]``, params, next state).

        A memoryless β ignores the (empty) state.
        """
        snapshot = self.snapshot
        if snapshot.cell is None:
            return (*self.sample(observations, rng), ())
        outputs, next_state = recurrent_forward(snapshot.cell, snapshot.layers, observations, state)
        return (*self.sampler.sample(outputs, rng), next_state)


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
