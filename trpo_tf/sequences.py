"""A rollout cut into training sequences for recurrent networks (``trainer.bptt_length``).

Each env's ``T`` steps of a ``[T, N, ...]`` rollout become ``S = T / L`` sequences of
``L``: sequence ``n·S + c`` holds steps ``c·L … c·L + L − 1`` of env n. The state a
network had at each sequence's start is the one recorded at collection, so gradients
stop there (truncated back-propagation through time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from trpo_tf.policy import Policy, SequenceInputs
from trpo_tf.trainer.tracing import traced_without_op_tracebacks
from trpo_tf.types import Rollout


def to_sequences(values: np.ndarray, length: int) -> np.ndarray:
    """``[T, N, ...]`` time-major → ``[N·T/L, L, ...]``: each env's steps cut into
    sequences of ``L``; sequence ``n·(T/L) + c`` is steps ``c·L … c·L + L − 1`` of env n."""
    per_env = np.swapaxes(values, 0, 1)
    return per_env.reshape(-1, length, *values.shape[2:])


def sequence_start_states(states: tuple[np.ndarray, ...], length: int) -> tuple[np.ndarray, ...]:
    """The recorded states ``[T, N, size]`` at each sequence's start → ``[N·T/L, size]``."""
    return tuple(
        np.ascontiguousarray(np.swapaxes(part[::length], 0, 1).reshape(-1, part.shape[-1]))
        for part in states
    )


def sequence_arguments(
    rollout: Rollout,
    length: int,
    denominator: np.ndarray,
    advantages: np.ndarray,
) -> tuple[Any, ...]:
    """The recurrent policy step's inputs from a rollout (``TrpoUpdate.sequence_policy_step``).

    Observations ``[B, L, obs_dim]``, starts ``[B, L]``, β's state at each sequence's
    start ``([B, size], ...)`` (the state recorded at collection, so gradients stop
    there), then actions, log β and Â per step ``[B·L, ...]`` in sequence order.
    ``denominator`` and ``advantages`` are ``[T, N]``.
    """
    starts = to_sequences(rollout.episode_starts, length).astype(np.float32)
    state = sequence_start_states(rollout.policy_states, length)

    def per_step(values: np.ndarray) -> np.ndarray:
        sequences = to_sequences(values, length)
        return np.ascontiguousarray(sequences.reshape(-1, *values.shape[2:]))

    return (
        np.ascontiguousarray(to_sequences(rollout.observations, length)),
        starts,
        state,
        per_step(rollout.actions),
        per_step(denominator.astype(np.float32)),
        per_step(advantages.astype(np.float32)),
    )


def from_sequences(values: np.ndarray, n_envs: int) -> np.ndarray:
    """Per-step values in sequence order ``[N·T, ...]`` → time-major ``[T, N, ...]``.

    The inverse of :func:`to_sequences` followed by flattening: step ``l`` of sequence
    ``n·S + c`` is row ``n·T + c·L + l``, i.e. step ``t = c·L + l`` of env ``n``.
    """
    return np.swapaxes(values.reshape(n_envs, -1, *values.shape[1:]), 0, 1)


def sequence_log_prob(policy: Policy, length: int, observation_dim: int) -> Callable[..., Any]:
    """log π_θ(a|s) of a recurrent policy over a rollout's sequences, compiled.

    ``(observations [B, L, obs_dim], starts [B, L], state ([B, size], ...), actions
    [B·L, *action_shape]) -> [B·L]``, the arguments in :func:`sequence_arguments`'
    order: one ``policy.dist_params(SequenceInputs(...))`` pass from the recorded states,
    the state reset at episode starts, the same forward pass the TRPO step takes.
    """
    head = policy.head
    return tf.function(
        traced_without_op_tracebacks(
            lambda obs, starts, state, actions: policy.distribution(
                policy.dist_params(SequenceInputs(obs, starts, tuple(state)))
            ).log_prob(actions)
        ),
        input_signature=[
            tf.TensorSpec([None, length, observation_dim], tf.float32),
            tf.TensorSpec([None, length], tf.float32),
            tuple(tf.TensorSpec([None, size], tf.float32) for size in policy.state_sizes),
            tf.TensorSpec([None, *head.action_shape], head.action_dtype),
        ],
        autograph=False,
    )


def value_sequence_arguments(
    rollout: Rollout, length: int, value_states: tuple[np.ndarray, ...], targets: np.ndarray
) -> tuple[Any, ...]:
    """A recurrent V's fit inputs: observations ``[B, L, obs_dim]``, starts ``[B, L]``, V's
    state at each sequence's start ``([B, size], ...)`` and the targets ``[B, L]``, cut
    from ``[T, N]`` arrays as :func:`to_sequences` does."""
    return (
        np.ascontiguousarray(to_sequences(rollout.observations, length)),
        to_sequences(rollout.episode_starts, length).astype(np.float32),
        sequence_start_states(value_states, length),
        np.ascontiguousarray(to_sequences(targets.astype(np.float32), length)),
    )
