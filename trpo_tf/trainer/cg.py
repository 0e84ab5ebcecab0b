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
    early_exit: bool = True,
) -> tf.Tensor:
    """x ≈ F⁻¹ b; see :func:`conjugate_gradient_with_residual`."""
    return conjugate_gradient_with_residual(matvec, b, iterations, residual_tol, early_exit)[0]


def conjugate_gradient_with_residual(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    b: tf.Tensor,
    iterations: int,
    residual_tol: float = 1e-10,
    early_exit: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Approximately solve ``F x = b`` using only products ``F v``.

    Standard CG from x₀ = 0: r₀ = p₀ = b; each iteration
    α = rᵀr / pᵀFp, x ← x + αp, r ← r − αFp, β = r'ᵀr' / rᵀr, p ← r' + βp.
    Stops after ``iterations`` products or once rᵀr ≤ ``residual_tol`` · bᵀb: the
    test is relative, so the iterates of c·b are c times those of b (up to rounding)
    for any scale c (TRPO's g scales with the advantages, and its step must not depend on that).
    A zero ``b`` stops before the first product.

    Runs as a ``tf.while_loop`` whose body calls ``matvec`` (a plain function, so
    second-order gradients inside it are not taken through the loop).

    With ``early_exit=False`` the loop's predicate is the iteration counter alone
    (an int32 that TensorFlow keeps in host memory), so on a GPU the host never
    waits for the device inside CG: it enqueues all ``iterations`` products at once.
    Iterations after convergence still compute their product but change nothing
    (x, r and p are selected unchanged), so x and r equal the early-exit result
    bit for bit; only the products after convergence are extra work.

    Args:
        matvec: v ``[n]`` -> F v ``[n]``.
        b: right-hand side ``[n]``.
        iterations: maximum number of CG iterations (Python int, fixed at trace).
        residual_tol: convergence threshold on rᵀr relative to bᵀb.
        early_exit: leave the loop once converged (on a GPU, a device-to-host read of
            rᵀr every iteration) instead of running all ``iterations``.

    Returns:
        x ``[n]`` and the residual r = b − F x ``[n]`` as CG updates it (equal to
        b − F x up to rounding), so F x = b − r costs no further product.
    """
    b = tf.convert_to_tensor(b)
    bb = dot(b, b)
    # Strictly greater: a zero b (rᵀr = 0 = tol) must not run an iteration (α = 0/0).
    tol = tf.constant(residual_tol, b.dtype) * bb

    def cond(i, x, r, p, rr):
        if early_exit:
            return tf.logical_and(i < iterations, rr > tol)
        return i < iterations

    def body(i, x, r, p, rr):
        fp = matvec(p)
        alpha = rr / dot(p, fp)
        x_new = x + alpha * p
        r_new = r - alpha * fp
        rr_new = dot(r_new, r_new)
        p_new = r_new + (rr_new / rr) * p
        if early_exit:
            return i + 1, x_new, r_new, p_new, rr_new
        # Converged: keep every state as it is (α and β may be 0/0 there).
        active = rr > tol
        keep = [tf.where(active, new, old) for new, old in ((x_new, x), (r_new, r), (p_new, p))]
        return i + 1, *keep, tf.where(active, rr_new, rr)

    _, x, r, _, _ = tf.while_loop(
        cond,
        body,
        (tf.constant(0), tf.zeros_like(b), b, b, bb),
        maximum_iterations=iterations,
    )
    return x, r


def trust_region_step(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    g: tf.Tensor,
    max_kl: tf.Tensor,
    iterations: int,
    early_exit: bool = True,
) -> tuple[tf.Tensor, tf.Tensor]:
    """TRPO's step for the gradient ``g``: s = CG(F, g), step = √(2δ / sᵀFs) · s.

    sᵀ(F + λI)s comes from CG itself, (F + λI)s = g − r: no extra product.

    Args:
        matvec: v ``[n]`` -> (F + λI) v ``[n]``.
        g: the gradient ``[n]``.
        max_kl: δ, a scalar of ``g``'s dtype.
        iterations, early_exit: as in :func:`conjugate_gradient_with_residual`.

    Returns:
        The step ``[n]`` (zero where the curvature is unusable) and whether sᵀFs is
        positive and finite (a scalar bool).
    """
    direction, residual = conjugate_gradient_with_residual(
        matvec, g, iterations, early_exit=early_exit
    )
    curvature = dot(direction, g - residual)
    usable = tf.logical_and(curvature > 0, tf.math.is_finite(curvature))
    scale = tf.sqrt(2.0 * max_kl / tf.where(usable, curvature, tf.ones_like(curvature)))
    return tf.where(usable, scale * direction, tf.zeros_like(direction)), usable
