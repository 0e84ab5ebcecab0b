"""Conjugate gradient for F x = b with F symmetric positive definite."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from trpo_tf.trainer.flat import dot


def conjugate_gradient(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    b: tf.Tensor,
    iterations: int,
    residual_tol: float = 1e-10,
) -> tf.Tensor:
    """x ≈ F⁻¹ b; see :func:`conjugate_gradient_with_residual`."""
    return conjugate_gradient_with_residual(matvec, b, iterations, residual_tol)[0]


def conjugate_gradient_with_residual(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    b: tf.Tensor,
    iterations: int,
    residual_tol: float = 1e-10,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Approximately solve ``F x = b`` using only products ``F v``.

    Standard CG from x₀ = 0: r₀ = p₀ = b; each iteration
    α = rᵀr / pᵀFp, x ← x + αp, r ← r − αFp, β = r'ᵀr' / rᵀr, p ← r' + βp.
    Stops after ``iterations`` products or once rᵀr < ``residual_tol``.

    Runs as a ``tf.while_loop`` whose body calls ``matvec`` (a plain function, so
    second-order gradients inside it are not taken through the loop).

    Args:
        matvec: v ``[n]`` -> F v ``[n]``.
        b: right-hand side ``[n]``.
        iterations: maximum number of CG iterations (Python int, fixed at trace).
        residual_tol: early-exit threshold on the squared residual norm.

    Returns:
        x ``[n]`` and the residual r = b − F x ``[n]`` as CG updates it (equal to
        b − F x up to rounding), so F x = b − r costs no further product.
    """
    b = tf.convert_to_tensor(b)
    tol = tf.constant(residual_tol, b.dtype)

    def cond(i, x, r, p, rr):
        return tf.logical_and(i < iterations, rr >= tol)

    def body(i, x, r, p, rr):
        fp = matvec(p)
        alpha = rr / dot(p, fp)
        x = x + alpha * p
        r = r - alpha * fp
        rr_new = dot(r, r)
        p = r + (rr_new / rr) * p
        return i + 1, x, r, p, rr_new

    _, x, r, _, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.zeros_like(b), b, b, dot(b, b)),
        maximum_iterations=iterations,
    )
    return x, r
