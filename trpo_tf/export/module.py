"""The exported ``tf.Module``: networks, frozen normalization, env-ready actions, and a
recurrent policy's (or value network's) state as explicit inputs and outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.export.observations import env_observation_inputs
from trpo_tf.networks.rnn import is_recurrent


def env_action_fn(head: Any, action_space: gym.Space) -> Callable[[tf.Tensor], tf.Tensor]:
    """The graph form of ``head.to_env_action`` for the exported signatures.

    A head with its own ``to_env_action_graph`` uses it. The built-in heads map by
    the action space (below). A plug-in head that overrides ``to_env_action`` without
    a graph twin cannot be exported faithfully: that raises rather than exporting
    actions the head would never send to ``env.step``.

    Raises:
        IncompatibleSpaceError: as above, or an unsupported action space.
    """
    graph_twin = getattr(head, "to_env_action_graph", None)
    if graph_twin is not None:
        return graph_twin
    defined_in = getattr(type(head).to_env_action, "__module__", "")
    if not defined_in.startswith("trpo_tf.distributions"):
        raise IncompatibleSpaceError(
            f"cannot export: distribution head {type(head).__name__} ({defined_in}) maps actions "
            "in to_env_action() but has no to_env_action_graph(actions: tf.Tensor) -> tf.Tensor "
            "twin; add one (docs/plugins.md) so the SavedModel returns the same env actions"
        )
    return _space_action_fn(action_space)


def _space_action_fn(action_space: gym.Space) -> Callable[[tf.Tensor], tf.Tensor]:
    """Graph twin of the built-in heads' ``to_env_action`` for ``action_space``.

    Discrete: ``int64(a) + start``. Box: clip to ``[low, high]``, reshape to
    ``[batch, *shape]`` and cast to the space's dtype. MultiDiscrete: indices plus
    ``start``, reshaped and cast. MultiBinary: reshaped and cast.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        start = int(action_space.start)
        return lambda actions: tf.cast(actions, tf.int64) + tf.constant(start, tf.int64)
    if isinstance(action_space, gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        shape = [int(d) for d in action_space.shape]
        dtype = tf.as_dtype(action_space.dtype)
        start = np.asarray(getattr(action_space, "start", 0), np.int64).reshape(-1)

        def to_env_multi(actions: tf.Tensor) -> tf.Tensor:
            shifted = tf.cast(actions, tf.int64) + tf.constant(start)
            return tf.cast(tf.reshape(shifted, [-1, *shape]), dtype)

        return to_env_multi
    if isinstance(action_space, gym.spaces.Box):
        shape = [int(d) for d in action_space.shape]
        dtype = tf.as_dtype(action_space.dtype)
        low = np.asarray(action_space.low, np.float64).reshape(-1)
        high = np.asarray(action_space.high, np.float64).reshape(-1)

        def to_env(actions: tf.Tensor) -> tf.Tensor:
            clipped = tf.clip_by_value(
                actions, tf.constant(low, actions.dtype), tf.constant(high, actions.dtype)
            )
            return tf.cast(tf.reshape(clipped, [-1, *shape]), dtype)

        return to_env
    raise IncompatibleSpaceError(
        f"export supports Box, Discrete, MultiDiscrete and MultiBinary action spaces, "
        f"not {action_space}"
    )


STATE_PREFIX = "policy_state_"
VALUE_STATE_PREFIX = "value_state_"


def state_names(count: int, prefix: str = STATE_PREFIX) -> list[str]:
    """Signature names of a recurrent network's state tensors: ``policy_state_0``, ...
    (``value_state_0``, ... with ``prefix=VALUE_STATE_PREFIX``)."""
    return [f"{prefix}{i}" for i in range(count)]


def signature_state_names(function: Any, prefix: str = STATE_PREFIX) -> list[str]:
    """The state inputs (``policy_state_i``, in order) of a loaded acting signature;
    ``[]`` for a memoryless export (``prefix=VALUE_STATE_PREFIX``: the ``value_state_i``
    of a loaded value signature)."""
    names = [n for n in function.structured_input_signature[1] if n.startswith(prefix)]
    return sorted(names, key=lambda name: int(name[len(prefix) :]))


def state_specs(
    state_sizes: tuple[int, ...], prefix: str = STATE_PREFIX
) -> dict[str, tf.TensorSpec]:
    """``{"policy_state_i": [batch, H_i] float32}``, the state inputs of the acting
    signatures (``value_state_i`` of the value signatures with ``prefix``)."""
    return {
        name: tf.TensorSpec([None, size], tf.float32, name=name)
        for name, size in zip(state_names(len(state_sizes), prefix), state_sizes, strict=True)
    }


def value_state_sizes(value_network: Any) -> tuple[int, ...]:
    """The state widths of a recurrent value network (``lstm``: (H, H), ``gru``: (H,));
    ``()`` for a memoryless one."""
    if not is_recurrent(value_network):
        return ()
    return tuple(int(size) for size in value_network.state_sizes)


class ExportedAgent(tf.Module):
    """What the SavedModel holds: networks, head variables and frozen constants.

    Args:
        policy: the agent's :class:`~trpo_tf.policy.Policy` (network + head).
        value_network: ``[batch, obs_dim] -> [batch, 1]``.
        observation_mean, observation_var: ``[obs_dim]`` normalizer statistics,
            or None when observation normalization is off.
        observation_clip, epsilon: the normalizer's clip and ε.
        action_space: the environment's action space (for the env-ready mapping).
        metadata_json: the JSON string returned by :meth:`metadata`.
        env_observation_space: the environment's own observation space, before
            flattening: adds ``env_action``, ``env_sample`` and ``env_value``, which
            take observations as the env returns them
            (:mod:`trpo_tf.export.observations`). None: only the flattened signatures.

    A recurrent policy (non-empty ``policy.state_sizes``) also gets
    ``initial_state(batch_size) -> {"policy_state_i": [batch_size, H_i]}``, and its
    ``action``/``sample`` (and ``env_*`` twins) take the state as a second argument, a
    dict of ``policy_state_i`` ``[batch, H_i]``, and return the next state under the
    same names beside their outputs. The caller keeps the state (any batch size,
    concurrent callers are safe) and sets a row back to ``initial_state``'s where its
    episode starts.

    A recurrent value network (:func:`~trpo_tf.networks.rnn.is_recurrent`) likewise:
    ``initial_state`` also returns ``value_state_i`` ``[batch_size, H_i]`` (it exists
    when only V is recurrent), and ``value``/``env_value`` take them as a second
    argument and return the next ones beside ``value``. A memoryless V keeps the
    one-argument ``value``; a memoryless policy keeps the one-argument acting signatures.
    """

    def __init__(
        self,
        policy: Any,
        value_network: Any,
        observation_dim: int,
        observation_mean: np.ndarray | None,
        observation_var: np.ndarray | None,
        observation_clip: float,
        epsilon: float,
        action_space: gym.Space,
        metadata_json: str,
        env_observation_space: gym.Space | None = None,
    ) -> None:
        super().__init__(name="trpo_tf_export")
        self.policy_network = policy.network
        self.head = policy.head
        self.value_network = value_network
        self._normalize = observation_mean is not None
        if self._normalize:
            # μ and √(σ² + ε) are computed in float64 like the numpy normalizer,
            # then rounded once to float32 for the graph.
            self._mean = np.asarray(observation_mean, np.float64).astype(np.float32)
            self._std = np.sqrt(np.asarray(observation_var, np.float64) + epsilon).astype(
                np.float32
            )
            self._clip = float(observation_clip)
        self._to_env = env_action_fn(policy.head, action_space)
        self._metadata_json = metadata_json
        self._state_sizes = tuple(int(size) for size in policy.state_sizes)
        self._value_state_sizes = value_state_sizes(value_network)
        spec = tf.TensorSpec([None, observation_dim], tf.float32, name="observation")
        # A recurrent policy's acting signatures take and return its state as well,
        # and a recurrent V's value signatures its own.
        policy_state = state_specs(self._state_sizes) if self._state_sizes else None
        value_state = (
            state_specs(self._value_state_sizes, VALUE_STATE_PREFIX)
            if self._value_state_sizes
            else None
        )
        action, sample = (
            (self._recurrent_action, self._recurrent_sample)
            if self._state_sizes
            else (self._action, self._sample)
        )
        value = self._recurrent_value if self._value_state_sizes else self._value
        states = [policy_state] if policy_state else []
        values = [value_state] if value_state else []
        self.action = tf.function(action, input_signature=[spec, *states], autograph=False)
        self.sample = tf.function(sample, input_signature=[spec, *states], autograph=False)
        self.value = tf.function(value, input_signature=[spec, *values], autograph=False)
        self.metadata = tf.function(self._metadata, input_signature=[], autograph=False)
        if self.stateful:
            self.initial_state = tf.function(
                self._initial_state,
                input_signature=[tf.TensorSpec([], tf.int32, name="batch_size")],
                autograph=False,
            )
        if env_observation_space is not None:
            specs, self._flatten = env_observation_inputs(env_observation_space)
            for name, flat_fn, state_spec in (
                ("env_action", action, policy_state),
                ("env_sample", sample, policy_state),
                ("env_value", value, value_state),
            ):
                setattr(self, name, self._on_env_observations(flat_fn, specs, state_spec))

    @property
    def stateful(self) -> bool:
        """Whether the policy or V carries a state (the export has ``initial_state``)."""
        return bool(self._state_sizes or self._value_state_sizes)

    def _on_env_observations(
        self,
        flat_fn: Callable,
        specs: dict[str, tf.TensorSpec],
        state_spec: dict[str, tf.TensorSpec] | None = None,
    ) -> Any:
        """``flat_fn`` behind the in-graph flattening of env observations ``specs``
        (with ``state_spec``: ``flat_fn`` also takes and returns that state)."""
        if state_spec is not None:

            def on_env_with_state(
                observation: dict[str, tf.Tensor], state: dict[str, tf.Tensor]
            ) -> dict[str, tf.Tensor]:
                return flat_fn(self._flatten(observation), state)

            signature = [specs, state_spec]
            return tf.function(on_env_with_state, input_signature=signature, autograph=False)

        def on_env(observation: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return flat_fn(self._flatten(observation))

        return tf.function(on_env, input_signature=[specs], autograph=False)

    def _normalized(self, observation: tf.Tensor) -> tf.Tensor:
        if not self._normalize:
            return observation
        normalized = (observation - tf.constant(self._mean)) / tf.constant(self._std)
        return tf.clip_by_value(normalized, -self._clip, self._clip)

    def _params(self, observation: tf.Tensor) -> tf.Tensor:
        return self.head.params(self.policy_network(self._normalized(observation)))

    def _action(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"action": self._to_env(self.head.mode(self._params(observation)))}

    def _sample(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        distribution = self.head.distribution(self._params(observation))
        raw = distribution.sample()
        return {"action": self._to_env(raw), "log_prob": distribution.log_prob(raw)}

    def _initial_state(self, batch_size: tf.Tensor) -> dict[str, tf.Tensor]:
        """The state at an episode's start: ``{"policy_state_i": [batch_size, H_i]}``
        for a recurrent policy, and ``value_state_i`` for a recurrent V."""
        initial: dict[str, tf.Tensor] = {}
        if self._state_sizes:
            parts = self.policy_network.initial_state(batch_size)
            initial.update(zip(state_names(len(self._state_sizes)), parts, strict=True))
        if self._value_state_sizes:
            names = state_names(len(self._value_state_sizes), VALUE_STATE_PREFIX)
            parts = self.value_network.initial_state(batch_size)
            initial.update(zip(names, parts, strict=True))
        return {name: tf.cast(part, tf.float32) for name, part in initial.items()}

    def _step_params(
        self, observation: tf.Tensor, state: dict[str, tf.Tensor]
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """One recurrent step: (params ``[batch, P]``, next state by input name)."""
        names = state_names(len(self._state_sizes))
        outputs, next_state = self.policy_network.step(
            self._normalized(observation), tuple(state[name] for name in names)
        )
        return self.head.params(outputs), dict(zip(names, next_state, strict=True))

    def _recurrent_action(
        self, observation: tf.Tensor, state: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        params, next_state = self._step_params(observation, state)
        return {"action": self._to_env(self.head.mode(params)), **next_state}

    def _recurrent_sample(
        self, observation: tf.Tensor, state: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        params, next_state = self._step_params(observation, state)
        distribution = self.head.distribution(params)
        raw = distribution.sample()
        return {"action": self._to_env(raw), "log_prob": distribution.log_prob(raw), **next_state}

    def _value(self, observation: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"value": tf.squeeze(self.value_network(self._normalized(observation)), -1)}

    def _recurrent_value(
        self, observation: tf.Tensor, state: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        """One step of a recurrent V: ``{"value": [batch], "value_state_i": next state}``."""
        names = state_names(len(self._value_state_sizes), VALUE_STATE_PREFIX)
        outputs, next_state = self.value_network.step(
            self._normalized(observation), tuple(state[name] for name in names)
        )
        return {"value": tf.squeeze(outputs, -1), **dict(zip(names, next_state, strict=True))}

    def _metadata(self) -> dict[str, tf.Tensor]:
        return {"metadata": tf.constant(self._metadata_json)}
