"""Every distribution parameter that matters must be bounded by the trust region.

TRPO's metric is the Hessian of the mean KL at θ = θ_old, the Fisher matrix

    F = ∇²_θ KL(π_old ‖ π_θ) |_{θ = θ_old},   F_jj = E_{a ~ π_old}[(∂ log π(a) / ∂θ_j)²].

The trainer never forms F: it differentiates the head's KL twice (Fisher-vector
products). A KL that is not twice differentiable at p = q — TFP's closed-form
Laplace KL is built from |μ_p − μ_q|, whose automatic second derivative at 0 is 0 —
gives F_jj = 0 for a parameter that does change the policy. The Fisher-vector product
then ignores that parameter, the natural-gradient step along it is unbounded, and the
line search rejects every step (kl 0, line_search_accepted 0) while the run "succeeds".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from trpo_tf.testing.head_checker import HeadChecker

# A score this small relative to the largest one means the column does not enter
# log_prob at that row (e.g. the logit of a one-class component, a masked logit).
_SCORE_RTOL = 1e-6


def kl_hessian_diagonal(head: Any, params_old: tf.Tensor) -> np.ndarray:
    """diag ∇²_params KL(π(params_old) ‖ π(params)) at params = params_old, ``[B, P]``.

    Rows are independent, so the diagonal entry of row b and column j is
    ∂/∂params[b, j] of Σ_b' ∂KL_b'/∂params[b', j]: one gradient per column.
    """
    old = head.distribution(tf.stop_gradient(params_old))
    params = tf.identity(params_old)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(params)
        with tf.GradientTape() as inner:
            inner.watch(params)
            kl = tf.reduce_sum(old.kl_divergence(head.distribution(params)))
        gradient = inner.gradient(kl, params)
        columns = [tf.reduce_sum(gradient[:, j]) for j in range(int(params.shape[-1]))]
    diagonal = []
    for j, column in enumerate(columns):
        second = outer.gradient(column, params)
        diagonal.append(np.zeros(params.shape[0]) if second is None else second[:, j].numpy())
    del outer
    return np.stack(diagonal, axis=-1).astype(np.float64)


def score_squares(head: Any, params_old: tf.Tensor, draws: int, seed: int) -> np.ndarray:
    """mean_s (∂ log π(a_s) / ∂params)² over ``draws`` samples a_s ~ π(params_old), ``[B, P]``:
    a Monte-Carlo estimate of the Fisher diagonal, zero where a column cannot change log_prob."""
    batch, width = (int(d) for d in params_old.shape)
    samples = head.distribution(params_old).sample(draws, seed=tf.constant([seed, 4], tf.int32))
    flat_samples = tf.reshape(samples, [draws * batch, *samples.shape[2:]])
    tiled = tf.reshape(tf.tile(params_old[None], [draws, 1, 1]), [draws * batch, width])
    with tf.GradientTape() as tape:
        tape.watch(tiled)
        log_prob = tf.reduce_sum(head.distribution(tiled).log_prob(flat_samples))
    score = tape.gradient(log_prob, tiled)
    if score is None:
        return np.zeros((batch, width))
    score = np.asarray(score, np.float64).reshape(draws, batch, width)
    return np.mean(score**2, axis=0)


def check_trust_region(
    checker: HeadChecker,
    head: Any,
    basics: Mapping[str, Any],
    seed: int,
    rows: int = 4,
    draws: int = 32,
) -> None:
    """Each parameter column that changes log_prob has ∂²KL/∂params_j² > 0 at p = q.

    A column whose score ∂ log π(a)/∂params_j is zero on every draw (it does not enter
    the distribution at that row: a one-class component's logit, a masked logit) is
    not a parameter of that row's policy and is exempt; every other one must be
    constrained by the trust region. Runs on the first ``rows`` rows.
    """
    params_old = tf.constant(np.asarray(basics["params_p"])[:rows])
    try:
        hessian = kl_hessian_diagonal(head, params_old)
    except Exception as error:
        raise AssertionError(
            f"{checker.context}: Hessian of KL(π_old ‖ π(params)) w.r.t. params failed: "
            f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"
        ) from error
    scores = score_squares(head, params_old, draws, seed)
    enters = scores > (_SCORE_RTOL**2) * max(1.0, float(scores.max(initial=0.0)))
    unconstrained = enters & ~(hessian > 0.0)
    bad_columns = sorted({int(j) for j in np.nonzero(unconstrained)[1]})
    checker.expect(
        not bad_columns,
        "trust region constrains every parameter",
        f"param column(s) {bad_columns} of {head.param_dim} change log_prob but the diagonal "
        "of the Hessian of KL(π_old ‖ π(params)) at params = old params is "
        f"{[float(np.min(hessian[:, j])) for j in bad_columns]}: the Fisher-vector product "
        "ignores them and the line search can never accept a step (kl 0, "
        "line_search_accepted 0 every iteration); make the KL twice "
        "differentiable with positive curvature at p = q (e.g. no |μ_p − μ_q| term, or "
        "register a smooth tfd.RegisterKL for the distribution)",
    )
