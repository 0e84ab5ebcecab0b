"""A numpy mirror of the policy for stepping environments.

Calling a compiled TensorFlow function costs ~100–400 µs per call on a small CPU
whatever the batch, which dominates rollouts of cheap environments; a numpy
forward pass of a small MLP costs ~10–30 µs. The mirror copies the weights after
every update (:meth:`NumpyActor.sync`), so it always equals π_θ to float32
round-off. It is used when the policy network is a plain stack of Dense layers
and the distribution head offers ``numpy_sampler()``; otherwise the TensorFlow
:class:`~trpo_tf.rollout.actor.Actor` is used.
"""

from __future__ import annotations

from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from trpo_tf.errors import TrpoTfError
from trpo_tf.networks import DenseWithFeatures
from trpo_tf.policy import Policy
from trpo_tf.rollout.numpy_policy import (
    ACTIVATIONS,
    APPEND_INPUT,
    Layer,
    PolicySnapshot,
    dumps_by_value,
    mlp_forward,
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
        """The numpy sampler's ``method``; what a plug-in's sampler raises names the plug-in."""
        try:
            return getattr(self._sampler, method)(*args)
        except TrpoTfError:
            raise
        except Exception as error:
            name = getattr(self.policy.head, "plugin_name", None)
            if name is None:
                raise
            from trpo_tf.plugin_errors import DISTRIBUTION_KEY, plugin_raised
            from trpo_tf.registry import DISTRIBUTIONS

            call = "numpy_sampler()." + (
                "sample(net_out, rng)" if method == "sample" else "mode(net_out)"
            )
            raise plugin_raised(DISTRIBUTION_KEY, DISTRIBUTIONS, name, call, error) from error
