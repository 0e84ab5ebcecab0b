"""Fisher-vector products: Hessian of the mean KL, or its Gauss-Newton form Jᵀ H_p J."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from trpo_tf.trainer.flat import dot, flat_gradient


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
        grad_dot_vector = dot(grad, vector)
    hvp = flat_gradient(outer.gradient(grad_dot_vector, variables), variables)
    return hvp + damping * vector


def primal_variables(variables: Sequence[Any]) -> list[Any]:
    """The ``tf.Variable`` behind each variable (Keras 3 variables wrap one): what tapes watch."""
    return [getattr(v, "value", v) if hasattr(v, "_value") else v for v in variables]


def gauss_newton_fisher_vector_product(
    dist_params: Callable[[], tf.Tensor],
    old_params: tf.Tensor,
    kl_of_params: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables: Sequence[Any],
    vector: tf.Tensor,
    damping: float,
) -> tf.Tensor:
    """(F + λI) v = Jᵀ H_p J v + λ v for one ``vector`` (see :func:`linearized_fisher`)."""
    return linearized_fisher(dist_params, old_params, kl_of_params, variables, damping)(vector)


def linearized_fisher(
    dist_params: Callable[[], tf.Tensor],
    old_params: tf.Tensor,
    kl_of_params: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables: Sequence[Any],
    damping: float,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """The map v ↦ (F + λI) v = Jᵀ H_p J v + λ v, with the forward pass done once.

    J = ∂p/∂θ ``[batch·param_dim, n_params]`` is the Jacobian of the distribution
    parameters p(s; θ) and H_p = ∇²_p mean_s KL(p_old ‖ p) at p = p_old (block
    diagonal, one ``[param_dim, param_dim]`` block per state). At θ = θ_old the
    gradient ∇_p KL vanishes, so the Hessian of the mean KL w.r.t. θ is exactly
    Jᵀ H_p J — the product :func:`fisher_vector_product` computes by double
    back-propagation. Only valid at θ = θ_old (where conjugate gradient uses it).

    p(s; θ) is computed once, under a persistent tape. Each product then costs one
    backward pass for Jᵀu and one pass through that backward graph for J v (the
    derivative of u ↦ (Jᵀu)·v is J v), reusing the stored activations: no forward
    pass is repeated inside conjugate gradient, and no forward-mode machinery is
    traced.

    Args:
        dist_params: () -> p(s; θ) ``[batch, param_dim]`` at the current θ.
        old_params: p_old ``[batch, param_dim]`` (constant).
        kl_of_params: (p_old, p) -> mean KL, scalar.
        variables: θ as a list of variables, in flat order.
        damping: λ ≥ 0.

    Returns:
        A function v ``[n_params]`` -> (F + λI) v ``[n_params]``, callable inside
        ``tf.while_loop`` bodies of the same graph.
    """
    forward = tf.GradientTape(persistent=True, watch_accessed_variables=False)
    with forward:
        forward.watch(primal_variables(variables))
        params = dist_params()
    return fisher_of_linearization(forward, params, old_params, kl_of_params, variables, damping)


def fisher_of_linearization(
    forward: tf.GradientTape,
    params: tf.Tensor,
    old_params: tf.Tensor,
    kl_of_params: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    variables: Sequence[Any],
    damping: float,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """v ↦ Jᵀ H_p J v + λ v from ``params`` = p(s; θ_old) recorded on ``forward``.

    ``forward`` is a persistent tape that watched :func:`primal_variables` while it
    computed ``params`` ``[batch, param_dim]``; see :func:`linearized_fisher`.
    """
    primals = primal_variables(variables)

    def transpose_product(cotangent: tf.Tensor) -> tf.Tensor:
        """Jᵀ u ``[n_params]`` for u ``[batch, param_dim]``."""
        gradients = forward.gradient(params, primals, output_gradients=cotangent)
        return flat_gradient(gradients, variables)

    # Everything that does not depend on v is recorded once, outside conjugate
    # gradient's loop: the backward pass Jᵀ·probe (linear in the probe, so its
    # derivative w.r.t. the probe along v is J v) and ∇_p KL at p_old (whose
    # derivative along w is H_p w). Each product then runs three linear passes.
    probe = tf.zeros_like(params)
    with tf.GradientTape(persistent=True) as linear:
        linear.watch(probe)
        jt_probe = transpose_product(probe)
    with tf.GradientTape(persistent=True) as curvature:
        curvature.watch(params)
        with tf.GradientTape() as inner:
            inner.watch(params)
            kl = kl_of_params(old_params, params)
        grad_p = inner.gradient(kl, params)

    def product(vector: tf.Tensor) -> tf.Tensor:
        vector = tf.stop_gradient(vector)
        jv = linear.gradient(
            jt_probe,
            probe,
            output_gradients=vector,
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        h_jv = curvature.gradient(
            grad_p,
            params,
            output_gradients=tf.stop_gradient(jv),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        return transpose_product(tf.stop_gradient(h_jv)) + damping * vector

    return product
