"""Backtracking line search along the natural-gradient step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from trpo_tf.trainer.flat import assign_flat


class LineSearchResult(NamedTuple):
    """Outcome of :func:`backtracking_line_search` (all scalar tensors).

    Attributes:
        accepted: bool, whether a step was kept.
        steps: number of candidate step sizes evaluated (1 = the full step).
        kl: mean KL(π_old‖π_θ) at the kept θ (0 when rejected).
        improvement: J(θ) − J(θ_old) at the kept θ (0 when rejected).
        step_fraction: backtrackᵏ of the kept step (0 when rejected).
    """

    accepted: tf.Tensor
    steps: tf.Tensor
    kl: tf.Tensor
    improvement: tf.Tensor
    step_fraction: tf.Tensor


def backtracking_line_search(
    variables: Sequence[Any],
    theta_old: tf.Tensor,
    full_step: tf.Tensor,
    surrogate_old: tf.Tensor,
    evaluate: Callable[[], tuple[tf.Tensor, tf.Tensor]],
    max_kl: float | tf.Tensor,
    max_steps: int,
    backtrack: float,
    enabled: tf.Tensor | bool = True,
) -> LineSearchResult:
    """Try θ = θ_old + βᵏ·step for k = 0, 1, …; keep the first acceptable one.

    A candidate is accepted only when mean KL(π_old‖π_θ) ≤ ``max_kl`` **and**
    J(θ) − J(θ_old) > 0, both finite. If no candidate among ``max_steps`` passes,
    the variables are restored to ``theta_old`` exactly (bit for bit).

    Args:
        variables: θ as a list of variables (assigned in place).
        theta_old: θ_old ``[n_params]``.
        full_step: the trust-region-scaled natural-gradient step ``[n_params]``.
        surrogate_old: J(θ_old), scalar.
        evaluate: () -> (J(θ), mean KL(π_old‖π_θ)) at the current variable values.
        max_kl: δ (a Python float or a scalar tensor).
        max_steps: number of candidates (Python int).
        backtrack: β ∈ (0, 1) (Python float).
        enabled: scalar bool; when False no candidate is tried (``steps`` = 0) and
            θ stays θ_old — how a skipped update runs without a ``tf.cond``.
    """
    dtype = theta_old.dtype
    zero = tf.zeros((), dtype)

    enabled = tf.convert_to_tensor(enabled, tf.bool)

    def cond(k, accepted, kl, improvement, fraction):
        return tf.logical_and(tf.logical_and(k < max_steps, tf.logical_not(accepted)), enabled)

    def body(k, accepted, kl, improvement, fraction):
        fraction = tf.pow(tf.constant(backtrack, dtype), tf.cast(k, dtype))
        assign_ops = assign_flat(variables, theta_old + fraction * full_step)
        with tf.control_dependencies(assign_ops):
            surrogate, kl = evaluate()
        improvement = surrogate - surrogate_old
        ok = tf.reduce_all(
            [
                kl <= tf.cast(max_kl, kl.dtype),
                improvement > 0,
                tf.math.is_finite(kl),
                tf.math.is_finite(improvement),
            ]
        )
        return k + 1, ok, kl, improvement, fraction

    steps, accepted, kl, improvement, fraction = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.constant(False), zero, zero, zero),
        maximum_iterations=max_steps,
    )

    # The accepted candidate is what the variables hold; otherwise θ_old goes back.
    # One unconditional assignment instead of a tf.cond (no branch functions to trace).
    with tf.control_dependencies([steps]):
        assign_flat(variables, tf.where(accepted, theta_old + fraction * full_step, theta_old))
    return LineSearchResult(
        accepted=accepted,
        steps=steps,
        kl=tf.where(accepted, kl, zero),
        improvement=tf.where(accepted, improvement, zero),
        step_fraction=tf.where(accepted, fraction, zero),
    )
