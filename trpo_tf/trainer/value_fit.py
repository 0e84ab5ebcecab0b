"""Regression of the value baseline V_φ(s) onto advantage-estimator targets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import keras
import tensorflow as tf


class GradientOptimizer(Protocol):
    """What the value fit needs of an optimizer (``FusedAdam``, any Keras optimizer)."""

    def build(self, variables: Sequence[tf.Variable]) -> Any:
        """Create the optimizer's state for ``variables`` (before the first step)."""

    def apply_gradients(self, grads_and_vars: Iterable[tuple[tf.Tensor, tf.Variable]]) -> Any:
        """Apply one step of ``(gradient, variable)`` pairs."""


def fit_value(
    value_network: keras.Model,
    optimizer: GradientOptimizer,
    generator: tf.random.Generator,
    observations: tf.Tensor,
    targets: tf.Tensor,
    epochs: int | tf.Tensor,
    minibatch_size: int,
) -> tf.Tensor:
    """Minimize ½·mean((V_φ(s) − target)²) with Adam over shuffled minibatches.

    Each epoch draws one permutation, gathers the whole batch once and reshapes it
    to ``[n_minibatches, minibatch_size, ...]`` (per-minibatch gathers are slow
    under XLA). When the batch does not divide evenly, the permutation is extended
    by wrapping around, so every sample is used in every epoch.

    Args:
        value_network: ``[batch, obs_dim] -> [batch, 1]``.
        optimizer: built over ``value_network.trainable_variables`` (``FusedAdam`` or Keras).
        generator: source of the per-epoch permutations (checkpointable).
        observations: ``[batch, obs_dim]``.
        targets: ``[batch]``.
        epochs: passes over the data (Python int or int32 scalar tensor).
        minibatch_size: samples per Adam step (Python int).

    Returns:
        Mean squared error of the last epoch, scalar (0 after zero epochs).
    """

    def loss(rows: tuple[tf.Tensor, ...]) -> tf.Tensor:
        obs, tgt = rows
        return tf.reduce_mean(tf.square(tf.squeeze(value_network(obs), axis=-1) - tgt))

    return shuffled_minibatch_fit(
        value_network.trainable_variables,
        optimizer,
        generator,
        (observations, targets),
        epochs,
        minibatch_size,
        loss,
    )


def shuffled_minibatch_fit(
    variables: list[Any],
    optimizer: GradientOptimizer,
    generator: tf.random.Generator,
    rows: tuple[Any, ...],
    epochs: int | tf.Tensor,
    minibatch_size: int,
    loss_of: Any,
) -> tf.Tensor:
    """Adam on ½·``loss_of(minibatch)`` over shuffled minibatches of ``rows``, per epoch.

    ``rows`` is a nest of tensors sharing their first dimension (samples or sequences);
    each epoch draws one permutation, gathers every tensor once and reshapes it to
    ``[n_minibatches, minibatch_size, ...]``, wrapping around when the rows do not
    divide evenly. ``loss_of`` maps one minibatch (the same nest) to a scalar MSE.
    Returns the mean loss of the last epoch (0 after zero epochs).
    """
    flat = tf.nest.flatten(rows)
    batch = int(flat[0].shape[0])
    n_minibatches = -(-batch // minibatch_size)
    padded = n_minibatches * minibatch_size
    dtype = flat[-1].dtype

    def epoch(epoch_index, last_loss):
        permutation = tf.argsort(generator.uniform([batch]))
        index = tf.tile(permutation, [-(-padded // batch)])[:padded]
        shuffled = [
            tf.reshape(tf.gather(values, index), [n_minibatches, minibatch_size, *values.shape[1:]])
            for values in flat
        ]

        def minibatch(i, loss_sum):
            batch_rows = tf.nest.pack_sequence_as(rows, [values[i] for values in shuffled])
            with tf.GradientTape() as tape:
                loss = loss_of(batch_rows)
                half_loss = 0.5 * loss
            grads = tape.gradient(half_loss, variables)
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            return i + 1, loss_sum + loss

        _, loss_sum = tf.while_loop(
            lambda i, _: i < n_minibatches, minibatch, (tf.constant(0), tf.zeros((), dtype))
        )
        return epoch_index + 1, loss_sum / n_minibatches

    _, last_loss = tf.while_loop(
        lambda e, _: e < epochs, epoch, (tf.constant(0), tf.zeros((), dtype))
    )
    return last_loss


def fit_value_sequences(
    value_network: keras.Model,
    optimizer: GradientOptimizer,
    generator: tf.random.Generator,
    observations: tf.Tensor,
    starts: tf.Tensor,
    state: tuple[tf.Tensor, ...],
    targets: tf.Tensor,
    epochs: int | tf.Tensor,
    minibatch_sequences: int,
) -> tf.Tensor:
    """:func:`fit_value` for a recurrent V_φ, on whole sequences.

    Minimizes ½·mean((V_φ(s_t | state) − target_t)²) over all steps, unrolling V over
    each sequence from the state recorded at its start (truncated back-propagation);
    each epoch shuffles sequences, never steps.

    Args:
        value_network: a recurrent network (``sequence``) with one output.
        observations: ``[B, L, obs_dim]``; ``starts`` ``[B, L]``; ``state`` ``([B, size],
            ...)``; ``targets`` ``[B, L]``.
        minibatch_sequences: sequences per Adam step.

    Returns:
        Mean squared error of the last epoch, scalar (0 after zero epochs).
    """
    size = min(minibatch_sequences, int(observations.shape[0]))

    def loss(rows: tuple[Any, ...]) -> tf.Tensor:
        obs, first, initial, tgt = rows
        outputs = value_network.sequence(obs, tuple(initial), first)
        return tf.reduce_mean(tf.square(tf.squeeze(outputs, axis=-1) - tgt))

    return shuffled_minibatch_fit(
        value_network.trainable_variables,
        optimizer,
        generator,
        (observations, starts, tuple(state), targets),
        epochs,
        size,
        loss,
    )
