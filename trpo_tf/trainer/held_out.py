"""A cross-fitted improvement check for the TRPO step (``trainer.held_out_check``).

TRPO scales every step to the trust region's boundary, whatever signal the advantages
carry, and the line search tests the step on the batch it was fitted to, where a
direction fitted to noise improves J too. The check fits the direction on one half of
the batch and measures it on the other:

    batch = A ∪ B                          (the first and second half of its rows, in
                                           collection order: time for a memoryless
                                           policy, whole sequences for a recurrent one)
    for (fit, test) in (A, B), (B, A):
        s_fit = CG(F, g_fit)               g_fit = ∇_θ J_fit(θ_old), F on the whole batch
        step_fit = √(2δ / s_fitᵀ F s_fit) · s_fit
    gain = [J_B(θ_old + step_A) − J_B(θ_old)] + [J_A(θ_old + step_B) − J_A(θ_old)]
    the update proceeds only if gain > 0 (and is finite)

With no signal behind Â the gain is as likely negative as positive, so about half of
such steps are skipped; with a signal both halves agree and the step is TRPO's,
unchanged. θ is θ_old again when the check returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from trpo_tf.errors import ConfigError
from trpo_tf.trainer.cg import trust_region_step
from trpo_tf.trainer.flat import assign_flat

Surrogate = Callable[[tf.Tensor], tf.Tensor]


def half_split(steps: int, rows: int) -> int:
    """Per-step index where half A ends: the first ``rows // 2`` rows of ``steps // rows``
    steps each (a row is a state, or a sequence of a recurrent policy).

    Raises:
        ConfigError: fewer than 2 rows, so one half would be empty.
    """
    if rows < 2:
        raise ConfigError(
            f"trainer.held_out_check needs a batch of at least 2 states (or 2 sequences of "
            f"a recurrent policy), got {rows}; raise trainer.steps_per_iteration or set "
            "trainer.held_out_check to false"
        )
    return (rows // 2) * (steps // rows)


def cross_fitted_gain(
    variables: Sequence[Any],
    theta_old: tf.Tensor,
    dist_params: Callable[[], tf.Tensor],
    halves: tuple[Surrogate, Surrogate],
    halves_old: tuple[tf.Tensor, tf.Tensor],
    gradients: tuple[tf.Tensor, tf.Tensor],
    split: int,
    fisher_product: Callable[[tf.Tensor], tf.Tensor],
    delta: tf.Tensor,
    cg_iters: int,
    cg_early_exit: bool = True,
) -> tf.Tensor:
    """The module docstring's ``gain``, a scalar; θ is restored to θ_old bit for bit.

    Args:
        variables: θ (assigned in place while each half's step is measured).
        theta_old: θ_old ``[n_params]``.
        dist_params: () -> the head's parameters on the whole batch at the current θ,
            ``[steps, param_dim]``; rows ``[:split]`` are half A, ``[split:]`` half B.
        halves: (J_A, J_B), each params of its half -> scalar.
        halves_old: (J_A(θ_old), J_B(θ_old)).
        gradients: (g_A, g_B) ``[n_params]`` (zero when the update skips anyway).
        split: the per-step index where A ends (:func:`half_split`).
        fisher_product: v -> (F + λI) v on the batch.
        delta: δ, the trust region.
        cg_iters: CG iterations per half.
        cg_early_exit: as in :func:`~trpo_tf.trainer.cg.trust_region_step`.
    """
    steps = [
        trust_region_step(fisher_product, gradient, delta, cg_iters, cg_early_exit)[0]
        for gradient in gradients
    ]

    def tested_on_other_half(step: tf.Tensor, test: int, after: list) -> tf.Tensor:
        with tf.control_dependencies(after):
            assigned = assign_flat(variables, theta_old + step)
        with tf.control_dependencies(assigned):
            params = dist_params()
        tested = params[split:] if test == 1 else params[:split]
        return halves[test](tested) - halves_old[test]

    gain_on_b = tested_on_other_half(steps[0], 1, after=[])
    gain = gain_on_b + tested_on_other_half(steps[1], 0, after=[gain_on_b])
    with tf.control_dependencies([gain]):
        restore = assign_flat(variables, theta_old)
    with tf.control_dependencies(restore):
        return tf.where(tf.math.is_finite(gain), gain, tf.constant(-1.0, gain.dtype))
