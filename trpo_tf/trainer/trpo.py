"""One TRPO iteration, compiled once.

Algorithm (Schulman et al., 2015, with an importance-sampled surrogate):

    given a batch {s, a, log β(a|s), Â} collected by the behavior policy β
    π_old ← π_θ (parameters stop-gradiented on the batch states)
    J(θ)  = mean[ π_θ(a|s) / β(a|s) · Â ]
    g     = ∇_θ J(θ_old)
    if ‖g‖ ≈ 0: skip
    s, r  = CG(F, g)                     F v = ∇²_θ mean KL(π_old‖π_θ) v + λ v, r = g − F s
    sᵀFs  = sᵀ(g − r)
    if sᵀFs ≤ 0 or non-finite: skip
    step  = √(2δ / sᵀFs) · s
    θ     = line_search(θ_old, step)     accept iff KL ≤ δ and J improved, else θ_old
    fit V_φ to the value targets with Adam

All hyperparameters are Python constants captured when the update is built and
the batch shape is fixed, so the function traces exactly once per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from trpo_tf.policy import Policy
from trpo_tf.trainer.cg import conjugate_gradient_with_residual
from trpo_tf.trainer.flat import assign_flat, dot, flat_gradient, get_flat
from trpo_tf.trainer.fvp import (
    fisher_of_linearization,
    fisher_vector_product,
    primal_variables,
)
from trpo_tf.trainer.line_search import backtracking_line_search
from trpo_tf.trainer.placement import on_accelerator
from trpo_tf.trainer.tracing import traced_without_op_tracebacks
from trpo_tf.trainer.value_fit import GradientOptimizer, fit_value

SKIP_NONE = 0
SKIP_ZERO_GRADIENT = 1
SKIP_BAD_CURVATURE = 2
SKIP_REASONS = {
    SKIP_NONE: "",
    SKIP_ZERO_GRADIENT: "gradient norm ≈ 0",
    SKIP_BAD_CURVATURE: "sᵀFs ≤ 0 or non-finite",
}


@dataclass(frozen=True)
class TrpoHyperparameters:
    """Constants of the update (captured at trace time).

    Attributes:
        max_kl: δ, the trust-region radius on mean KL(π_old‖π_θ).
        cg_iters: conjugate-gradient iterations.
        cg_damping: λ added to the Fisher diagonal.
        line_search_steps: candidates tried by the backtracking line search.
        line_search_backtrack: step shrink factor per candidate.
        fvp_subsample: fraction of the batch used for Fisher-vector products, a
            fresh uniformly random subset each update (1.0 = the whole batch).
        value_epochs: Adam epochs of the value fit.
        value_minibatch_size: samples per Adam step.
        grad_norm_eps: ‖g‖ below this skips the policy step.
        fvp_method: ``gauss_newton`` (Jᵀ H_p J v: forward + reverse pass) or
            ``hessian`` (double back-propagation of the mean KL); equal at θ_old.
    """

    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 0.1
    line_search_steps: int = 10
    line_search_backtrack: float = 0.8
    fvp_subsample: float = 1.0
    value_epochs: int = 10
    value_minibatch_size: int = 64
    grad_norm_eps: float = 1e-8
    fvp_method: str = "gauss_newton"


class TrpoUpdate(tf.Module):
    """Callable that performs one TRPO policy step and one value fit.

    Call with (all ``[batch, ...]`` with a fixed ``batch``):
        observations ``[batch, obs_dim]``, actions ``[batch, *action_shape]``,
        behavior_log_prob ``[batch]`` (log β(a|s) as stored at collection time),
        advantages ``[batch]``, value_targets ``[batch]``.

    Returns a dict of scalar tensors: ``kl, surrogate_improvement,
    line_search_steps, line_search_accepted, skip_reason, grad_norm, entropy,
    value_loss`` plus the head's diagnostics.
    """

    def __init__(
        self,
        policy: Policy,
        value_network: keras.Model,
        value_optimizer: GradientOptimizer,
        hyperparameters: TrpoHyperparameters,
        batch_size: int,
        observation_dim: int,
        seed: int = 0,
        dtype: tf.DType = tf.float32,
        jit_compile: bool = False,
    ) -> None:
        super().__init__(name="trpo_update")
        self.policy = policy
        self.value_network = value_network
        self.value_optimizer = value_optimizer
        self.hp = hyperparameters
        self.batch_size = int(batch_size)
        self.generator = tf.random.Generator.from_seed(seed)
        self.dtype = dtype
        self.fvp_batch = max(1, int(round(hyperparameters.fvp_subsample * batch_size)))
        value_optimizer.build(value_network.trainable_variables)
        self._value_epochs = tf.constant(hyperparameters.value_epochs)
        self._concrete: dict[str, Any] = {}  # by function name
        head = policy.head
        signature = [
            tf.TensorSpec([batch_size, observation_dim], dtype, name="observations"),
            tf.TensorSpec([batch_size, *head.action_shape], head.action_dtype, name="actions"),
            tf.TensorSpec([batch_size], dtype, name="behavior_log_prob"),
            tf.TensorSpec([batch_size], dtype, name="advantages"),
            tf.TensorSpec([batch_size], dtype, name="value_targets"),
        ]
        # With jit_compile, XLA fuses the small ops of FVP/CG/line search (HalfCheetah-sized
        # policy step 53 -> 38 ms on CPU) for 2-3 s more on the first call.
        # Traced without per-operation Python stack traces, so that their first call
        # runs without the GIL beside the learner's other thread (trainer/tracing.py).
        self.update = tf.function(
            traced_without_op_tracebacks(self._update),
            input_signature=signature,
            jit_compile=jit_compile,
            autograph=False,
        )
        # The two halves, compiled separately, for a learner that overlaps the value
        # fit with the next rollout (the policy step needs only θ, the fit only φ).
        self.policy_update = tf.function(
            traced_without_op_tracebacks(self.policy_step),
            input_signature=signature[:4],
            jit_compile=jit_compile,
            autograph=False,
        )
        # The epoch count is an input so that a call with none builds the function
        # without touching φ, Adam or the generator (prepare_value_fit).
        self.value_fit = tf.function(
            traced_without_op_tracebacks(self._value_fit),
            input_signature=[signature[0], signature[4], tf.TensorSpec([], tf.int32, "epochs")],
            jit_compile=jit_compile,
            autograph=False,
        )

    def trace_count(self) -> int:
        """Traces of the compiled functions so far (1 per function that was called)."""
        return sum(
            int(f.experimental_get_tracing_count())
            for f in (self.update, self.policy_update, self.value_fit)
        )

    def retrace_count(self) -> int:
        """Traces beyond the first of each compiled function (0 when shapes are fixed)."""
        return sum(
            max(0, int(f.experimental_get_tracing_count()) - 1)
            for f in (self.update, self.policy_update, self.value_fit)
        )

    def run_policy_step(
        self,
        observations: tf.Tensor | np.ndarray,
        actions: tf.Tensor | np.ndarray,
        behavior_log_prob: tf.Tensor | np.ndarray,
        advantages: tf.Tensor | np.ndarray,
    ) -> dict[str, tf.Tensor]:
        """:attr:`policy_update` on one batch (arrays or tensors of its signature).

        Called through its concrete function (traced here on first use): a call then
        skips the ``tf.function``'s argument binding and cache lookup, ~0.3 ms of
        Python each time. A batch of another shape is a ValueError naming the input,
        never a retrace.
        """
        return self._call_concrete(
            self.policy_update, observations, actions, behavior_log_prob, advantages
        )

    def value_update(
        self, observations: tf.Tensor | np.ndarray, value_targets: tf.Tensor | np.ndarray
    ) -> tf.Tensor:
        """Fit V_φ to ``value_targets`` ``[batch]`` for ``value_epochs``; the last epoch's MSE.

        Called like :meth:`run_policy_step`, through the fit's concrete function.
        """
        return self._call_concrete(self.value_fit, observations, value_targets, self._value_epochs)

    def _call_concrete(self, function: Any, *arguments: Any) -> Any:
        """``function`` (one of this update's ``tf.function``s) through its concrete
        function, traced on first use; each argument converted to its spec's dtype
        and checked against its shape (a concrete function does not check them)."""
        name = function.python_function.__name__
        concrete = self._concrete.get(name)
        if concrete is None:
            concrete = self._concrete[name] = function.get_concrete_function()
        tensors = []
        for argument, spec in zip(arguments, function.input_signature, strict=True):
            tensor = tf.convert_to_tensor(argument, spec.dtype)
            if not spec.shape.is_compatible_with(tensor.shape):
                raise ValueError(
                    f"{name}: {spec.name} has shape {tensor.shape}, this update was built "
                    f"for {spec.shape} (batch_size={self.batch_size})"
                )
            tensors.append(tensor)
        return concrete(*tensors)

    def prepare_value_fit(self) -> None:
        """Trace and instantiate the compiled value fit, changing no state.

        Calls it for zero epochs: no Adam step, no draw from the generator.
        """
        observations, targets, _ = self.value_fit.input_signature
        self.value_fit(
            tf.zeros(observations.shape, observations.dtype),
            tf.zeros(targets.shape, targets.dtype),
            tf.constant(0),
        )

    def _value_fit(self, observations, value_targets, epochs=None):
        return fit_value(
            self.value_network,
            self.value_optimizer,
            self.generator,
            observations,
            value_targets,
            self.hp.value_epochs if epochs is None else epochs,
            self.hp.value_minibatch_size,
        )

    def _update(self, observations, actions, behavior_log_prob, advantages, value_targets):
        metrics = self.policy_step(observations, actions, behavior_log_prob, advantages)
        metrics["value_loss"] = self._value_fit(observations, value_targets)
        return metrics

    def policy_step(
        self,
        observations: tf.Tensor,
        actions: tf.Tensor,
        behavior_log_prob: tf.Tensor,
        advantages: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """The TRPO step on θ (see the module docstring); eager- or graph-callable."""
        policy, hp = self.policy, self.hp
        variables = policy.policy_variables
        full_batch_fvp = self.fvp_batch == self.batch_size
        fvp_observations = observations
        if not full_batch_fvp:
            fvp_indices = random_subset(self.generator, self.batch_size, self.fvp_batch)
            fvp_observations = tf.gather(observations, fvp_indices)

        def surrogate_of(params: tf.Tensor) -> tf.Tensor:
            """J(θ) = mean[exp(log π_θ(a|s) − log β(a|s)) · Â] for p(s; θ) = ``params``."""
            log_prob = policy.distribution(params).log_prob(actions)
            return tf.reduce_mean(tf.exp(log_prob - behavior_log_prob) * advantages)

        def kl_of_params(old: tf.Tensor, new: tf.Tensor) -> tf.Tensor:
            """mean_s KL(π_old(·|s) ‖ π_θ(·|s)) from the two parameter batches."""
            return tf.reduce_mean(policy.distribution(old).kl_divergence(policy.distribution(new)))

        # One forward pass at θ_old, kept on a persistent tape: it gives π_old, J(θ_old)
        # and its gradient, and the linearization the Fisher-vector products reuse.
        forward = tf.GradientTape(persistent=True, watch_accessed_variables=False)
        with forward:
            forward.watch(primal_variables(variables))
            params = policy.dist_params(observations)
            surrogate_old = surrogate_of(params)
            fvp_params = params if full_batch_fvp else policy.dist_params(fvp_observations)
        old_params = tf.stop_gradient(params)
        old_distribution = policy.distribution(old_params)
        fvp_old_params = old_params if full_batch_fvp else tf.gather(old_params, fvp_indices)

        def evaluate() -> tuple[tf.Tensor, tf.Tensor]:
            """(J(θ), mean KL(π_old‖π_θ)) at the current θ, from one forward pass."""
            new_params = policy.dist_params(observations)
            return surrogate_of(new_params), kl_of_params(old_params, new_params)

        def fisher_product_fn():
            """v ↦ (F + λI) v, set up once per update."""
            if hp.fvp_method == "hessian":
                return lambda v: fisher_vector_product(
                    lambda: kl_of_params(fvp_old_params, policy.dist_params(fvp_observations)),
                    variables,
                    v,
                    hp.cg_damping,
                )
            return fisher_of_linearization(
                forward, fvp_params, fvp_old_params, kl_of_params, variables, hp.cg_damping
            )

        theta_old = get_flat(variables)
        gradient = flat_gradient(
            forward.gradient(surrogate_old, primal_variables(variables)), variables
        )
        grad_norm = tf.norm(gradient)
        # Straight-line graph, no tf.cond: a skipped update runs CG on g = 0 (on the CPU
        # it stops before its first product) and a line search with no candidates.
        has_gradient = tf.logical_and(grad_norm > hp.grad_norm_eps, tf.math.is_finite(grad_norm))
        rhs = tf.where(has_gradient, gradient, tf.zeros_like(gradient))
        # On a GPU, CG runs all cg_iters products with no device-to-host read of its
        # residual (bit-identical result); on the CPU it stops once converged.
        direction, residual = conjugate_gradient_with_residual(
            fisher_product_fn(), rhs, hp.cg_iters, early_exit=not on_accelerator(variables)
        )
        # sᵀ(F + λI)s with (F + λI)s = g − r from CG itself: no extra product.
        curvature = dot(direction, rhs - residual)
        curvature_ok = tf.logical_and(curvature > 0, tf.math.is_finite(curvature))
        proceed = tf.logical_and(has_gradient, curvature_ok)
        scale = tf.sqrt(2.0 * hp.max_kl / tf.where(proceed, curvature, tf.ones_like(curvature)))
        result = backtracking_line_search(
            variables,
            theta_old,
            scale * direction,
            surrogate_old,
            evaluate,
            hp.max_kl,
            hp.line_search_steps,
            hp.line_search_backtrack,
            enabled=proceed,
        )
        skip_reason = tf.where(
            has_gradient,
            tf.where(curvature_ok, SKIP_NONE, SKIP_BAD_CURVATURE),
            SKIP_ZERO_GRADIENT,
        )
        metrics = {
            "kl": result.kl,
            "surrogate_improvement": result.improvement,
            "line_search_steps": result.steps,
            "line_search_accepted": result.accepted,
            "skip_reason": skip_reason,
            "grad_norm": grad_norm,
            "entropy": tf.reduce_mean(old_distribution.entropy()),
        }
        metrics.update(policy.head.diagnostics(old_params))
        return metrics


def random_subset(generator: tf.random.Generator, population: int, size: int) -> tf.Tensor:
    """``size`` distinct indices of ``range(population)``, uniformly drawn ``[size]``.

    The indices of the ``size`` largest of ``population`` iid uniform keys: every
    subset of that size is equally likely (one ``TopKV2`` op).
    """
    keys = generator.uniform([population])
    return tf.math.top_k(keys, k=size, sorted=False).indices


def restore_policy(policy: Policy, theta: tf.Tensor) -> None:
    """Write a flat θ back into the policy (used by tests and checkpoints)."""
    assign_flat(policy.policy_variables, theta)


def policy_parameters(policy: Policy) -> tf.Tensor:
    """Current flat θ ``[n_params]``."""
    return get_flat(policy.policy_variables)
