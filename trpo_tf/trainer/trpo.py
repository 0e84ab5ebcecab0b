"""The TRPO policy step (Schulman et al., 2015, with an importance-sampled surrogate).

    given a batch {s, a, log β(a|s), Â} collected by the behavior policy β
    π_old ← π_θ (parameters stop-gradiented on the batch states)
    J(θ)  = mean[ π_θ(a|s) / β(a|s) · Â ] + c · mean[ H(π_θ(·|s)) ]   (c: entropy_coef, default 0)
    g     = ∇_θ J(θ_old)
    if g non-finite or ‖g‖ ≈ 0: skip
    s, r  = CG(F, g)                     F v = ∇²_θ mean KL(π_old‖π_θ) v + λ v, r = g − F s,
                                         until rᵀr ≤ 10⁻¹⁰·gᵀg (s does not depend on Â's scale)
    sᵀFs  = sᵀ(g − r)
    if sᵀFs ≤ 0 or non-finite: skip
    if held_out_check and the step fitted on each half of the batch does not improve J
        on the other half (trainer/held_out.py): skip
    step  = √(2δ / sᵀFs) · s
    θ     = line_search(θ_old, step)     accept iff KL ≤ δ and J improved, else θ_old

:func:`policy_step` is that box, top to bottom; the value fit V_φ is
``trainer/value_fit.py``. Both are compiled once per run by :class:`TrpoUpdate`
(``trainer/compiled.py``): the hyperparameters (``trainer/hyperparameters.py``) are
Python constants captured when it is built, except δ, a variable that
``trainer/kl_schedule.py`` may move over the run, and the batch shape is fixed.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from trpo_tf.policy import Policy, PolicyInputs, gather_inputs, gather_params, input_rows
from trpo_tf.trainer.cg import trust_region_step
from trpo_tf.trainer.flat import assign_flat, flat_gradient, get_flat
from trpo_tf.trainer.fvp import (
    fisher_of_linearization,
    fisher_vector_product,
    primal_variables,
)
from trpo_tf.trainer.held_out import cross_fitted_gain, half_split
from trpo_tf.trainer.hyperparameters import TrpoHyperparameters
from trpo_tf.trainer.line_search import backtracking_line_search

SKIP_NONE = 0
SKIP_ZERO_GRADIENT = 1
SKIP_BAD_CURVATURE = 2
SKIP_NONFINITE_GRADIENT = 3
SKIP_NO_HELD_OUT_GAIN = 4
SKIP_REASONS = {  # the text metrics.csv shows (ASCII: the file's encoding is the locale's)
    SKIP_NONE: "",
    SKIP_ZERO_GRADIENT: "gradient norm ~ 0",
    SKIP_BAD_CURVATURE: "curvature s'Fs <= 0 or non-finite",
    SKIP_NONFINITE_GRADIENT: "non-finite gradient",
    SKIP_NO_HELD_OUT_GAIN: "no held-out improvement",
}


def fisher_batch_size(batch_size: int, fvp_subsample: float) -> int:
    """States the Fisher-vector products see: ``fvp_subsample`` of the batch, at least 1."""
    return max(1, int(round(fvp_subsample * batch_size)))


def importance_sampled_surrogate(
    policy: Policy,
    actions: tf.Tensor,
    behavior_log_prob: tf.Tensor,
    advantages: tf.Tensor,
    entropy_coef: float = 0.0,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """params ↦ J = mean[exp(log π(a|s) − log β(a|s)) · Â] + c · mean[H(π(·|s))].

    ``params`` are p(s) ``[batch, param_dim]``. The denominator is β as stored at
    collection time (``behavior_log_prob`` ``[batch]``), never a recomputed π_old.
    The entropy term is traced only when ``entropy_coef`` (c, a Python constant) is
    above 0, so the default is TRPO's surrogate op for op.
    """

    def surrogate(params: tf.Tensor) -> tf.Tensor:
        distribution = policy.distribution(params)
        log_prob = distribution.log_prob(actions)
        objective = tf.reduce_mean(tf.exp(log_prob - behavior_log_prob) * advantages)
        if entropy_coef > 0:
            entropy = tf.reduce_mean(distribution.entropy())
            objective += tf.cast(entropy_coef, objective.dtype) * entropy
        return objective

    return surrogate


def mean_kl(policy: Policy) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """(p_old, p) ↦ mean_s KL(π(·|s; p_old) ‖ π(·|s; p)), both ``[batch, param_dim]``."""

    def kl(old_params: tf.Tensor, params: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(
            policy.distribution(old_params).kl_divergence(policy.distribution(params))
        )

    return kl


def random_subset(generator: tf.random.Generator, population: int, size: int) -> tf.Tensor:
    """``size`` distinct indices of ``range(population)``, uniformly drawn ``[size]``.

    The indices of the ``size`` largest of ``population`` iid uniform keys: every
    subset of that size is equally likely (one ``TopKV2`` op).
    """
    keys = generator.uniform([population])
    return tf.math.top_k(keys, k=size, sorted=False).indices


def policy_step(
    policy: Policy,
    hp: TrpoHyperparameters,
    generator: tf.random.Generator,
    observations: PolicyInputs,
    actions: tf.Tensor,
    behavior_log_prob: tf.Tensor,
    advantages: tf.Tensor,
    cg_early_exit: bool = True,
    max_kl: tf.Tensor | float | None = None,
) -> dict[str, tf.Tensor]:
    """The TRPO step on θ (the module docstring's box); eager- or graph-callable.

    Args:
        policy: π_θ; its variables are θ, updated in place (or restored exactly).
        hp: the update's constants.
        generator: draws the Fisher subsample when ``hp.fvp_subsample`` < 1.
        observations: s ``[batch, obs_dim]``; for a recurrent policy
            :class:`~trpo_tf.policy.SequenceInputs` of ``B`` sequences of ``L`` steps
            (``batch = B·L``, every per-step tensor below in sequence-major order):
            π_θ is unrolled over each sequence from the state β had at its start, the
            mean KL and the Fisher products are over all ``B·L`` steps, and the Fisher
            subsample draws whole sequences.
        actions: a ``[batch, *action_shape]``.
        behavior_log_prob: log β(a|s) ``[batch]`` as stored at collection time.
        advantages: Â ``[batch]``.
        cg_early_exit: CG stops once converged (see
            :func:`~trpo_tf.trainer.cg.conjugate_gradient_with_residual`); the same
            result either way.
        max_kl: δ for this step (a scalar tensor, e.g. a variable a schedule sets);
            ``hp.max_kl`` when omitted.

    Returns:
        Scalar tensors: ``kl, surrogate_improvement, line_search_steps,
        line_search_accepted, skip_reason, grad_norm``, and ``entropy`` and the
        head's diagnostics of π_old (before the step).
    """
    variables = policy.policy_variables
    delta = hp.max_kl if max_kl is None else max_kl
    surrogate = importance_sampled_surrogate(
        policy, actions, behavior_log_prob, advantages, hp.entropy_coef
    )
    kl = mean_kl(policy)
    # The Fisher subsample draws rows: states, or whole sequences of a recurrent policy.
    rows = input_rows(observations)
    fvp_size = fisher_batch_size(rows, hp.fvp_subsample)
    fvp_indices = None
    fvp_observations = observations
    if fvp_size < rows:
        fvp_indices = random_subset(generator, rows, fvp_size)
        fvp_observations = gather_inputs(observations, fvp_indices)

    if hp.held_out_check:  # J on each half of the batch (trainer/held_out.py)
        split = half_split(int(advantages.shape[0]), rows)
        halves = tuple(
            importance_sampled_surrogate(
                policy, actions[part], behavior_log_prob[part], advantages[part], hp.entropy_coef
            )
            for part in (slice(None, split), slice(split, None))
        )

    # π_old ← π_θ: one forward pass at θ_old, kept on a persistent tape, gives π_old,
    # J(θ_old) and its gradient, and the linearization the Fisher products reuse.
    forward = tf.GradientTape(persistent=True, watch_accessed_variables=False)
    with forward:
        forward.watch(primal_variables(variables))
        params = policy.dist_params(observations)
        surrogate_old = surrogate(params)
        fvp_params = params if fvp_indices is None else policy.dist_params(fvp_observations)
        if hp.held_out_check:
            halves_old = (halves[0](params[:split]), halves[1](params[split:]))
    old_params = tf.stop_gradient(params)
    fvp_old_params = (
        old_params if fvp_indices is None else gather_params(old_params, observations, fvp_indices)
    )
    # Diagnostics of π_old, taken before the line search moves θ (a head that reads
    # its own variables reads them here too).
    diagnostics = {
        "entropy": tf.reduce_mean(policy.distribution(old_params).entropy()),
        **policy.head.diagnostics(old_params),
    }

    def evaluate() -> tuple[tf.Tensor, tf.Tensor]:
        """(J(θ), mean KL(π_old‖π_θ)) at the current θ, from one forward pass."""
        new_params = policy.dist_params(observations)
        return surrogate(new_params), kl(old_params, new_params)

    # g = ∇_θ J(θ_old); skip when it is non-finite or ‖g‖ ≈ 0.
    theta_old = get_flat(variables)
    gradient = flat_gradient(
        forward.gradient(surrogate_old, primal_variables(variables)), variables
    )
    grad_norm = tf.norm(gradient)
    gradient_finite = tf.math.is_finite(grad_norm)
    has_gradient = tf.logical_and(gradient_finite, grad_norm > hp.grad_norm_eps)

    # F v at θ_old (on the Fisher subsample).
    if hp.fvp_method == "hessian":

        def fisher_product(vector: tf.Tensor) -> tf.Tensor:
            """(F + λI) v by double back-propagation of the mean KL at θ_old."""
            return fisher_vector_product(
                lambda: kl(fvp_old_params, policy.dist_params(fvp_observations)),
                variables,
                vector,
                hp.cg_damping,
            )

    else:  # the same product as Jᵀ H_p J v + λ v, from the recorded forward pass
        fisher_product = fisher_of_linearization(
            forward, fvp_params, fvp_old_params, kl, variables, hp.cg_damping
        )

    # s = CG(F, g), step = √(2δ / sᵀFs) · s. A skip is a straight line, not a tf.cond:
    # CG runs on g = 0 (stopping before its first product when it may exit early) and
    # the line search tries no candidate.
    delta = tf.cast(delta, gradient.dtype)
    rhs = tf.where(has_gradient, gradient, tf.zeros_like(gradient))
    step, curvature_ok = trust_region_step(fisher_product, rhs, delta, hp.cg_iters, cg_early_exit)
    proceed = tf.logical_and(has_gradient, curvature_ok)
    held_out_ok = tf.constant(True)
    if hp.held_out_check:
        half_gradients = tuple(
            tf.where(
                proceed,
                flat_gradient(forward.gradient(half, primal_variables(variables)), variables),
                tf.zeros_like(gradient),
            )
            for half in halves_old
        )
        gain = cross_fitted_gain(
            variables,
            theta_old,
            lambda: policy.dist_params(observations),
            halves,
            halves_old,
            half_gradients,
            split,
            fisher_product,
            delta,
            hp.cg_iters,
            cg_early_exit,
        )
        held_out_ok = tf.logical_or(tf.logical_not(proceed), gain > 0)
        proceed = tf.logical_and(proceed, held_out_ok)
    # θ = line_search(θ_old, step).
    result = backtracking_line_search(
        variables,
        theta_old,
        step,
        surrogate_old,
        evaluate,
        delta,
        hp.line_search_steps,
        hp.line_search_backtrack,
        enabled=proceed,
    )
    skip_reason = tf.where(
        has_gradient,
        tf.where(
            curvature_ok,
            tf.where(held_out_ok, SKIP_NONE, SKIP_NO_HELD_OUT_GAIN),
            SKIP_BAD_CURVATURE,
        ),
        tf.where(gradient_finite, SKIP_ZERO_GRADIENT, SKIP_NONFINITE_GRADIENT),
    )
    return {
        "kl": result.kl,
        "surrogate_improvement": result.improvement,
        "line_search_steps": result.steps,
        "line_search_accepted": result.accepted,
        "skip_reason": skip_reason,
        "grad_norm": grad_norm,
        **diagnostics,
    }


def restore_policy(policy: Policy, theta: tf.Tensor) -> None:
    """Write a flat θ back into the policy (used by tests and checkpoints)."""
    assign_flat(policy.policy_variables, theta)


def policy_parameters(policy: Policy) -> tf.Tensor:
    """Current flat θ ``[n_params]``."""
    return get_flat(policy.policy_variables)
