"""Recurrent torsos ``lstm`` and ``gru``: a cell, then fully connected layers.

A recurrent network maps one observation and a state to an output and a new state,

    (h_t, state_t) = cell(s_t, state_{t−1}),   output_t = mlp(h_t),

with ``state`` = (h, c) for an LSTM and (h,) for a GRU (zeros at an episode's start).
Besides the Keras ``call`` (one step from the zero state), it offers what training
and acting need (:class:`~trpo_tf.interfaces.RecurrentNetwork`):

* ``step(observations [n, D], state) -> (outputs [n, W], state)``, for acting;
* ``sequence(observations [B, L, D], state, starts [B, L]) -> outputs [B, L, W]``,
  for training: the same as ``L`` calls of ``step``, the state reset to zeros before
  each step whose ``starts`` is 1 (``state ← (1 − start) · state``).

``sequence`` is a static loop over ``L`` (an unrolled graph: ``L`` is
``trainer.bptt_length``, small), so the Fisher-vector products differentiate it
twice without going through a ``tf.while_loop``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import NetworkSpec
from trpo_tf.networks.mlp import build_mlp

CELLS = ("lstm", "gru")


class RecurrentTorso(keras.Model):
    """An LSTM or GRU cell followed by ``spec.hidden`` and the output layer.

    Args:
        spec: what the network is built for (observation width, output width, layers).
        cell: ``lstm`` or ``gru`` (Keras' ``LSTMCell``; ``GRUCell`` with
            ``reset_after=True``).
        units: H, the width of the cell's state.
        dtype: the variables' dtype (``float64`` for exact tests).
    """

    def __init__(
        self, spec: NetworkSpec, cell: str, units: int = 64, dtype: str = "float32"
    ) -> None:
        super().__init__(name=spec.name, dtype=dtype)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        self.cell_kind = cell
        self.units = int(units)
        self.observation_dim = int(spec.observation_dim)
        kernel = keras.initializers.Orthogonal(1.0, seed=spec.seed + 2000)
        recurrent = keras.initializers.Orthogonal(1.0, seed=spec.seed + 2001)
        common = {
            "kernel_initializer": kernel,
            "recurrent_initializer": recurrent,
            "dtype": dtype,
            "name": cell,
        }
        if cell == "lstm":
            self.cell = keras.layers.LSTMCell(self.units, unit_forget_bias=True, **common)
        else:
            self.cell = keras.layers.GRUCell(self.units, reset_after=True, **common)
        self.output_network = build_mlp(
            self.units,
            spec.hidden,
            spec.output_dim,
            activation=spec.activation,
            output_gain=spec.output_gain,
            seed=spec.seed,
            dtype=dtype,
            name=f"{spec.name}_output",
            append_features=spec.append_features,
        )
        self.cell.build((None, self.observation_dim))
        self.output_width = int(self.output_network.output_shape[-1])
        self.build((None, self.observation_dim))

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Widths of the state tensors: (H, H) for an LSTM (h, c), (H,) for a GRU."""
        return (self.units, self.units) if self.cell_kind == "lstm" else (self.units,)

    def initial_state(self, batch_size: int | tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Zeros ``[batch_size, size]`` for each state tensor."""
        return tuple(tf.zeros([batch_size, size], self.compute_dtype) for size in self.state_sizes)

    def _cell(self, observations: tf.Tensor, state: tuple[Any, ...]) -> tuple[Any, tuple]:
        hidden, new_state = self.cell(observations, list(state))
        if not isinstance(new_state, list | tuple):
            new_state = (new_state,)
        return hidden, tuple(new_state)

    def step(
        self, observations: tf.Tensor, state: tuple[tf.Tensor, ...]
    ) -> tuple[tf.Tensor, tuple[tf.Tensor, ...]]:
        """One step: ``[n, D]`` and state ``([n, H], ...)`` → ``([n, W], new state)``."""
        hidden, new_state = self._cell(observations, state)
        return self.output_network(hidden), new_state

    def sequence(
        self, observations: tf.Tensor, state: tuple[tf.Tensor, ...], starts: tf.Tensor
    ) -> tf.Tensor:
        """``[B, L, D]`` from ``state`` ``([B, H], ...)`` with resets → ``[B, L, W]``.

        ``starts [B, L]`` is 1 where the observation begins an episode: the state is
        reset to zeros before that step. Gradients flow through time inside the
        ``L`` steps and stop at the given ``state`` (truncated back-propagation).
        """
        length = int(observations.shape[1])
        keep = 1.0 - tf.cast(starts, self.compute_dtype)
        hidden_steps = []
        for t in range(length):
            state = tuple(part * keep[:, t : t + 1] for part in state)
            hidden, state = self._cell(observations[:, t], state)
            hidden_steps.append(hidden)
        hidden = tf.stack(hidden_steps, axis=1)  # [B, L, H]
        flat = self.output_network(tf.reshape(hidden, [-1, self.units]))
        return tf.reshape(flat, [-1, length, self.output_width])

    def call(self, observations: Any) -> Any:
        """One step from the zero state (what a memoryless caller sees): ``[n, W]``."""
        zeros = tuple(
            keras.ops.zeros((keras.ops.shape(observations)[0], size), self.compute_dtype)
            for size in self.state_sizes
        )
        hidden, _ = self._cell(observations, zeros)
        return self.output_network(hidden)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], self.output_width)


def is_recurrent(network: Any) -> bool:
    """Whether ``network`` carries a state (has ``state_sizes``, ``step`` and ``sequence``)."""
    return all(hasattr(network, name) for name in ("state_sizes", "step", "sequence"))


def make_lstm(spec: NetworkSpec, units: int = 64) -> RecurrentTorso:
    """Entry point ``lstm``: an LSTM cell of ``units``, then ``hidden`` and the output layer.

    YAML: ``policy: {hidden: [64], network: {name: lstm, units: 64}}``.
    """
    return RecurrentTorso(spec, "lstm", _units(units))


def make_gru(spec: NetworkSpec, units: int = 64) -> RecurrentTorso:
    """Entry point ``gru``: a GRU cell (``reset_after``) of ``units``, then ``hidden``."""
    return RecurrentTorso(spec, "gru", _units(units))


def _units(units: Any) -> int:
    if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
        raise ConfigError(f"units must be a positive integer, got {units!r}")
    return int(units)
