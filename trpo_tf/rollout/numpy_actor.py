"""A numpy mirror of the policy for stepping environments.

Calling a compiled TensorFlow function costs ~100–400 µs per call on a small CPU
whatever the batch, which dominates rollouts of cheap environments; a numpy
forward pass of a small MLP costs ~10–30 µs. The mirror copies the weights after
every update (:meth:`NumpyActor.sync`), so it always equals π_θ to float32
round-off. It is used when the policy network is a plain stack of Dense layers
and the distribution head offers ``numpy_sampler()``; otherwise the TensorFlow
:class:`~trpo_tf.rollout.actor.Actor` is used.

:class:`NumpyRecurrentActor` mirrors a recurrent policy (Keras' LSTM or GRU cell, then
Dense layers); the asynchronous runners' workers act with its snapshots, while the
synchronous sampler keeps the compiled :class:`~trpo_tf.rollout.actor.RecurrentActor`.
"""

from __future__ import annotations

from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from trpo_tf.errors import TrpoTfError
from trpo_tf.networks import DenseWithFeatures
from trpo_tf.networks.rnn import is_recurrent
from trpo_tf.policy import Policy
from trpo_tf.rollout.numpy_policy import (
    ACTIVATIONS,
    APPEND_INPUT,
    Layer,
    PolicySnapshot,
    RecurrentCell,
    dumps_by_value,
    mlp_forward,
    recurrent_forward,
)


class NumpySampler(Protocol):
    """What a head's ``numpy_sampler()`` returns (a snapshot of its variables)."""

    def sample(
        self, net_out: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``net_out [n, num_inputs]`` -> (actions, log_prob ``[n]``, params)."""
        ...

    def mode(self, net_out: np.ndarray) -> np.ndarray: ...


def mirror_layers(network: keras.Model) -> list[tuple[str, Any]] | None:
    """``[(activation, layer)]`` if ``network`` is Dense layers only, else None.

    A linear :class:`~trpo_tf.networks.DenseWithFeatures` is mirrored as
    :data:`~trpo_tf.rollout.numpy_policy.APPEND_INPUT`.
    """
    layers = []
    for layer in network.layers:
        if not isinstance(layer, keras.layers.Dense):
            return None
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else name.get("config", name)
        if isinstance(layer, DenseWithFeatures):
            if name != "linear":
                return None
            name = APPEND_INPUT
        elif name not in ACTIVATIONS:
            return None
        layers.append((name, layer))
    return layers


def read_variable(variable: Any) -> np.ndarray:
    """The current value of a Keras or TensorFlow variable as a numpy array.

    One eager ``ReadVariableOp`` (~9 µs; ``.numpy()`` on a Keras variable costs ~30 µs
    on its way through Keras' and TensorFlow's read paths). TensorFlow copies on the
    next assignment, so the array keeps the value it was read with.
    """
    resource = variable.value if isinstance(variable, keras.Variable) else variable
    if not hasattr(resource, "handle"):  # e.g. an autocast view: read it the usual way
        return np.asarray(resource)
    return tf.raw_ops.ReadVariableOp(resource=resource.handle, dtype=resource.dtype).numpy()


def read_weights(layers: list[tuple[str, Any]], dtype: Any = None) -> list[Layer]:
    """``[(activation, kernel, bias)]`` for :func:`mirror_layers`' output, read now.

    ``dtype`` casts the arrays (``None``: the variables' own dtype).
    """
    return [
        (
            name,
            np.asarray(read_variable(layer.kernel), dtype),
            np.asarray(read_variable(layer.bias), dtype),
        )
        for name, layer in layers
    ]


def can_mirror(policy: Policy) -> bool:
    """Whether :class:`NumpyActor` supports this policy."""
    return mirror_layers(policy.network) is not None and hasattr(policy.head, "numpy_sampler")


class NumpyActor:
    """``sample(obs [n, obs_dim]) -> (action, log_prob [n], params)`` in numpy."""

    def __init__(self, policy: Policy, seed: int) -> None:
        layers = mirror_layers(policy.network)
        if layers is None or not hasattr(policy.head, "numpy_sampler"):
            raise ValueError("policy cannot be mirrored in numpy; use the TensorFlow Actor")
        self.policy = policy
        self._layers = layers
        self.rng = np.random.default_rng(seed)
        self.sync()

    def sync(self) -> None:
        """Copy the current weights of π_θ (call after every update or restore)."""
        self._weights: list[Layer] = read_weights(self._layers, np.float32)
        self._sampler: NumpySampler = self.policy.head.numpy_sampler()

    def _forward(self, observations: np.ndarray) -> np.ndarray:
        return mlp_forward(self._weights, observations)

    def snapshot(self) -> PolicySnapshot:
        """The weights of the last :meth:`sync` as a picklable, TensorFlow-free copy.

        Rollout workers act with it (:class:`~trpo_tf.rollout.numpy_policy.SnapshotPolicy`);
        the caller labels it with a version and observation statistics
        (:meth:`PolicySnapshot.with_version`).
        """
        layers = tuple((name, kernel.copy(), bias.copy()) for name, kernel, bias in self._weights)
        return PolicySnapshot(layers, dumps_by_value(self._sampler))

    def sample(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._call("sample", self._forward(observations), self.rng)

    def sample_with(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions a ~ π(·|s) drawn with ``rng`` (not the rollout's generator)."""
        return self._call("sample", self._forward(observations), rng)[0]

    def mode(self, observations: np.ndarray) -> np.ndarray:
        return self._call("mode", self._forward(observations))

    def _call(self, method: str, *args: Any) -> Any:
        return call_sampler(self.policy.head, self._sampler, method, *args)


def call_sampler(head: Any, sampler: Any, method: str, *args: Any) -> Any:
    """The numpy sampler's ``method``; what a plug-in's sampler raises names the plug-in."""
    try:
        return getattr(sampler, method)(*args)
    except TrpoTfError:
        raise
    except Exception as error:
        name = getattr(head, "plugin_name", None)
        if name is None:
            raise
        from trpo_tf.plugin_errors import DISTRIBUTION_KEY, plugin_raised
        from trpo_tf.registry import DISTRIBUTIONS

        call = "numpy_sampler()." + (
            "sample(net_out, rng)" if method == "sample" else "mode(net_out)"
        )
        raise plugin_raised(DISTRIBUTION_KEY, DISTRIBUTIONS, name, call, error) from error


RECURRENT_CELLS = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}


def _activation_name(activation: Any) -> Any:
    name = keras.activations.serialize(activation)
    return name if isinstance(name, str) else name.get("config", name)


def mirror_recurrent(network: keras.Model) -> tuple[str, Any, list[tuple[str, Any]]] | None:
    """``(kind, cell layer, output layers)`` of a recurrent torso numpy can run, else None.

    Runs: a ``RecurrentTorso`` (``network.cell``, ``network.output_network``) whose cell
    is Keras' ``LSTMCell`` or ``GRUCell(reset_after=True)`` with the default tanh and
    sigmoid activations, and whose output network :func:`mirror_layers` can mirror.
    """
    cell = getattr(network, "cell", None)
    output = getattr(network, "output_network", None)
    if not is_recurrent(network) or cell is None or output is None:
        return None
    kind = next((k for k, cls in RECURRENT_CELLS.items() if isinstance(cell, cls)), None)
    if kind is None or (kind == "gru" and not cell.reset_after):
        return None
    if _activation_name(cell.activation) != "tanh":
        return None
    if _activation_name(cell.recurrent_activation) != "sigmoid":
        return None
    layers = mirror_layers(output)
    return None if layers is None else (kind, cell, layers)


def read_cell(kind: str, cell: Any, dtype: Any = np.float32) -> RecurrentCell:
    """The weights of a Keras LSTM/GRU ``cell`` as a :data:`RecurrentCell`, read now."""
    kernel = np.asarray(read_variable(cell.kernel), dtype)
    recurrent_kernel = np.asarray(read_variable(cell.recurrent_kernel), dtype)
    if cell.use_bias:
        bias = np.asarray(read_variable(cell.bias), dtype)
    else:  # no bias: zeros of the shape Keras would have given it
        width = recurrent_kernel.shape[1]
        bias = np.zeros((2, width) if kind == "gru" else (width,), dtype)
    return (kind, kernel, recurrent_kernel, bias)


def can_mirror_recurrent(policy: Policy) -> bool:
    """Whether :class:`NumpyRecurrentActor` supports this (recurrent) policy."""
    return mirror_recurrent(policy.network) is not None and hasattr(policy.head, "numpy_sampler")


class NumpyRecurrentActor:
    """The numpy twin of :class:`~trpo_tf.rollout.actor.RecurrentActor`.

    ``sample(obs [n, obs_dim], state) -> (action, log_prob [n], params, state')`` and
    ``mode(obs, state) -> (action, state')`` with ``state`` a tuple of ``[n, size]``
    float32 arrays; equal to ``policy.step_params`` to float32 round-off. It is what
    asynchronous rollout workers act with (:meth:`snapshot`), and a stand-in for the
    TensorFlow actor in a :class:`~trpo_tf.rollout.sampler.SyncSampler`.
    """

    recurrent = True

    def __init__(self, policy: Policy, seed: int) -> None:
        mirrored = mirror_recurrent(policy.network)
        if mirrored is None or not hasattr(policy.head, "numpy_sampler"):
            raise ValueError("recurrent policy cannot be mirrored in numpy; use RecurrentActor")
        self.policy = policy
        self._kind, self._cell_layer, self._layers = mirrored
        self.state_sizes = policy.state_sizes
        self.rng = np.random.default_rng(seed)
        self.sync()

    def sync(self) -> None:
        """Copy the current weights of π_θ (call after every update or restore)."""
        self._cell: RecurrentCell = read_cell(self._kind, self._cell_layer)
        self._weights: list[Layer] = read_weights(self._layers, np.float32)
        self._sampler: NumpySampler = self.policy.head.numpy_sampler()

    def initial_state(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """Zeros ``[batch_size, size]`` per state tensor (an episode's start)."""
        return tuple(np.zeros((batch_size, size), np.float32) for size in self.state_sizes)

    def snapshot(self) -> PolicySnapshot:
        """π_θ's weights *as they are now* (it syncs first), picklable and TensorFlow-free.

        Unlike :meth:`NumpyActor.snapshot` it does not wait for a :meth:`sync`: the
        training loop syncs its TensorFlow actor, not this twin the async runner holds.
        """
        self.sync()
        kind, kernel, recurrent_kernel, bias = self._cell
        layers = tuple(
            (name, kernel_.copy(), bias_.copy()) for name, kernel_, bias_ in self._weights
        )
        cell = (kind, kernel.copy(), recurrent_kernel.copy(), bias.copy())
        return PolicySnapshot(layers, dumps_by_value(self._sampler), cell=cell)

    def _forward(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        state = tuple(np.asarray(part, np.float32) for part in state)
        return recurrent_forward(self._cell, self._weights, observations, state)

    def sample(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """Sample a ~ π(·|s, state); (action, log_prob, params, next state)."""
        outputs, next_state = self._forward(observations, state)
        return (
            *call_sampler(self.policy.head, self._sampler, "sample", outputs, self.rng),
            next_state,
        )

    def mode(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Deterministic action and the next state."""
        outputs, next_state = self._forward(observations, state)
        return call_sampler(self.policy.head, self._sampler, "mode", outputs), next_state
