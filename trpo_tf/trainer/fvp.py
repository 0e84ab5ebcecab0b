"""Fisher-vector products via Hessian-vector products of the mean KL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from trpo_tf.trainer.flat import flat_gradient


def fisher_vector_product(
    mean_kl: Callable[[], tf.Tensor],
    variables: Sequence[Any],
    vector: tf.Tensor,
    damping: float,
) -> tf.Tensor:
    """(F + λI) v with F = ∇²_θ E_s[KL(π_old(·|s) ‖ π_θ(·|s))] at θ = θ_old.

    ``mean_kl`` must stop-gradient π_old's parameters so that only π_θ depends on θ;
    at θ = θ_old the KL's Hessian then equals the Fisher information matrix. The
    product is computed as ∇_θ (∇_θ KL · v) (Pearlmutter), never forming F.

    Args:
        mean_kl: () -> scalar mean KL, evaluated at the current variable values.
        variables: θ as a list of variables, in flat order.
        vector: v ``[n_params]``.
        damping: λ ≥ 0 added on the diagonal (Python float).

    Returns:
        (F + λI) v, ``[n_params]``.
    """
    vector = tf.stop_gradient(vector)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            kl = mean_kl()
        grad = flat_gradient(inner.gradient(kl, variables), variables)
        grad_dot_vector = tf.tensordot(grad, vector, 1)
    hvp = flat_gradient(outer.gradient(grad_dot_vector, variables), variables)
    return hvp + damping * vector
