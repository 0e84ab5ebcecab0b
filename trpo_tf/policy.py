"""The policy π_θ: a network followed by a distribution head.

θ is the network's weights plus the head's own variables (e.g. a Gaussian log-std).
A recurrent network (``lstm``, ``gru``) also carries a state from step to step; the
policy is then evaluated on whole sequences (:class:`SequenceInputs`) for training.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import tensorflow as tf

from trpo_tf.interfaces import DistributionHead
from trpo_tf.networks.rnn import is_recurrent


class SequenceInputs(NamedTuple):
    """A batch of ``B`` sequences of ``L`` steps for a recurrent policy.

    Attributes:
        observations: ``[B, L, obs_dim]``.
        starts: ``[B, L]`` float, 1 where the observation begins an episode (the
            state is reset to zeros before that step).
        state: the network's state before the first step, one ``[B, size]`` tensor
            per entry of ``network.state_sizes`` (as the behavior policy had it).
    """

    observations: tf.Tensor
    starts: tf.Tensor
    state: tuple[tf.Tensor, ...]

    @property
    def steps_per_row(self) -> int:
        """``L``."""
        return int(self.observations.shape[1])

    def gather(self, rows: tf.Tensor) -> SequenceInputs:
        """The sequences ``rows`` ``[k]`` (whole sequences, never single steps)."""
        return SequenceInputs(
            tf.gather(self.observations, rows),
            tf.gather(self.starts, rows),
            tuple(tf.gather(part, rows) for part in self.state),
        )


PolicyInputs = tf.Tensor | SequenceInputs
"""Observations ``[batch, obs_dim]`` for a memoryless policy, sequences for a recurrent one."""


def input_rows(inputs: PolicyInputs) -> int:
    """Rows a Fisher subsample draws from: sequences ``B``, or states ``batch``."""
    if isinstance(inputs, SequenceInputs):
        return int(inputs.observations.shape[0])
    return int(inputs.shape[0])


def gather_inputs(inputs: PolicyInputs, rows: tf.Tensor) -> PolicyInputs:
    """Rows ``rows`` of ``inputs`` (whole sequences for :class:`SequenceInputs`)."""
    if isinstance(inputs, SequenceInputs):
        return inputs.gather(rows)
    return tf.gather(inputs, rows)


def gather_params(params: tf.Tensor, inputs: PolicyInputs, rows: tf.Tensor) -> tf.Tensor:
    """The ``[k·L, param_dim]`` parameters of rows ``rows`` of ``params`` ``[B·L, P]``.

    ``params`` are per step, in the row-major order of ``inputs`` (sequence, then step).
    """
    if not isinstance(inputs, SequenceInputs):
        return tf.gather(params, rows)
    length = inputs.steps_per_row
    per_row = tf.reshape(params, [-1, length, params.shape[-1]])
    return tf.reshape(tf.gather(per_row, rows), [-1, params.shape[-1]])


class Policy(tf.Module):
    """π_θ(a|s) = head.distribution(head.params(network(s))).

    For a recurrent network s is the observation and the network's state:
    ``network.step(s_t, state) -> (features, state')``.
    """

    def __init__(self, network: keras.Model, head: DistributionHead) -> None:
        super().__init__(name="policy")
        self.network = network
        self.head = head

    @property
    def policy_variables(self) -> list[Any]:
        """θ as an ordered list: network weights, then head variables."""
        return list(self.network.trainable_variables) + list(self.head.trainable_variables)

    @property
    def recurrent(self) -> bool:
        """Whether the network carries a state (``lstm``, ``gru``)."""
        return is_recurrent(self.network)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Widths of the network's state tensors; ``()`` for a memoryless network."""
        return tuple(self.network.state_sizes) if self.recurrent else ()

    def initial_state(self, batch_size: int | tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The state at an episode's start, ``[batch_size, size]`` each (``()`` if none)."""
        return tuple(self.network.initial_state(batch_size)) if self.recurrent else ()

    def dist_params(self, inputs: PolicyInputs) -> tf.Tensor:
        """Distribution parameters ``[batch, param_dim]``.

        ``inputs`` are observations ``[batch, obs_dim]``, or for a recurrent network
        :class:`SequenceInputs` of ``B`` sequences of ``L`` steps, giving
        ``[B·L, param_dim]`` in sequence-major order.
        """
        if isinstance(inputs, SequenceInputs):
            outputs = self.network.sequence(inputs.observations, inputs.state, inputs.starts)
            return self.head.params(tf.reshape(outputs, [-1, outputs.shape[-1]]))
        return self.head.params(self.network(inputs))

    def step_params(
        self, observations: tf.Tensor, state: tuple[tf.Tensor, ...]
    ) -> tuple[tf.Tensor, tuple[tf.Tensor, ...]]:
        """One recurrent step: ``[n, obs_dim]``, state → (``[n, param_dim]``, next state)."""
        outputs, next_state = self.network.step(observations, state)
        return self.head.params(outputs), tuple(next_state)

    def distribution(self, params: tf.Tensor) -> Any:
        """Distribution with batch shape ``[batch]`` built from ``params``."""
        return self.head.distribution(params)
