"""``check_distribution``: a distribution head against the DistributionHead contract."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.interfaces import DistributionHead
from trpo_tf.testing.distribution_runtime import (
    check_compiled,
    check_env_actions,
    check_numpy_sampler,
    check_saved_model,
)
from trpo_tf.testing.head_checker import (
    Z_SCORE,
    HeadChecker,
    float_dtype,
    kl_tolerance,
)
from trpo_tf.testing.trust_region import check_trust_region

tfd = tfp.distributions

_REQUIRED = (
    "num_inputs",
    "param_dim",
    "action_shape",
    "action_dtype",
    "trainable_variables",
    "params",
    "distribution",
    "mode",
    "to_env_action",
    "diagnostics",
)


def _build(checker: HeadChecker, kwargs: Mapping[str, Any]) -> Any:
    try:
        head = checker.factory(checker.action_space, **kwargs)
    except Exception as error:
        raise AssertionError(
            f"{checker.context}: factory(action_space, **{dict(kwargs)}) raised "
            f"{type(error).__name__}: {error}"
        ) from error
    missing = [name for name in _REQUIRED if not hasattr(head, name)]
    checker.expect(
        not missing,
        "DistributionHead protocol",
        f"{type(head).__name__} lacks {', '.join(missing)}",
    )
    checker.expect(isinstance(head, DistributionHead), "DistributionHead protocol", "isinstance")
    for name in ("num_inputs", "param_dim"):
        value = getattr(head, name)
        checker.expect(
            isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0,
            name,
            f"must be a positive int, got {value!r}",
        )
    shape = head.action_shape
    checker.expect(
        isinstance(shape, tuple) and all(isinstance(d, int | np.integer) and d >= 0 for d in shape),
        "action_shape",
        f"must be a tuple of non-negative ints, got {shape!r}",
    )
    dtype = head.action_dtype
    checker.expect(
        isinstance(dtype, tf.DType) and (dtype.is_integer or dtype.is_floating),
        "action_dtype",
        f"must be an integer or floating tf.DType, got {dtype!r}",
    )
    checker.expect(
        isinstance(head, tf.Module),
        "checkpointing",
        f"{type(head).__name__} must be a tf.Module so its variables are saved with the policy",
    )
    return head


def _check_basics(
    checker: HeadChecker, head: Any, net_p: tf.Tensor, net_q: tf.Tensor, seed: int
) -> dict[str, Any]:
    """Shapes, dtypes and finiteness of params, sample, log_prob, mode, entropy and KL."""
    batch = int(net_p.shape[0])
    action_shape = (batch, *head.action_shape)
    params_p = head.params(net_p)
    params_q = head.params(net_q)
    for label, params in (("p", params_p), ("q", params_q)):
        array = checker.expect_tensor(
            params, "params(net_out)", (batch, head.param_dim), net_p.dtype
        )
        checker.expect_finite(array, f"params(net_out) ({label})")
    dist_p = head.distribution(params_p)
    dist_q = head.distribution(params_q)
    checker.expect(
        isinstance(dist_p, tfd.Distribution),
        "distribution(params)",
        f"returned {type(dist_p).__name__}, not a tfp.distributions.Distribution",
    )
    checker.expect(
        tuple(dist_p.batch_shape) == (batch,),
        "distribution(params).batch_shape",
        f"{tuple(dist_p.batch_shape)}, expected ({batch},): one distribution per row "
        "(wrap per-dimension distributions in tfd.Independent)",
    )
    sample = dist_p.sample(seed=tf.constant([seed, 1], tf.int32))
    sample_np = checker.expect_tensor(sample, "sample()", action_shape, head.action_dtype)
    log_prob = checker.expect_tensor(dist_p.log_prob(sample), "log_prob(sample)", (batch,))
    checker.expect_finite(log_prob, "log_prob(sample)")
    mode = head.mode(params_p)
    mode_np = checker.expect_tensor(mode, "mode(params)", action_shape, head.action_dtype)
    checker.expect_finite(
        checker.expect_tensor(dist_p.log_prob(mode), "log_prob(mode)", (batch,)),
        "log_prob(mode) (the mode must lie in the support)",
    )
    try:
        entropy = dist_p.entropy()
    except NotImplementedError as error:
        checker.fail(
            "entropy()",
            f"not implemented ({error}); the trainer logs the mean entropy every iteration, "
            "so implement it (exactly or as a documented deterministic estimate)",
        )
    entropy = checker.expect_tensor(entropy, "entropy()", (batch,))
    checker.expect_finite(entropy, "entropy()")
    tolerance = kl_tolerance(net_p.dtype)
    kl_pp = checker.expect_tensor(dist_p.kl_divergence(dist_p), "KL(p, p)", (batch,))
    checker.expect(
        np.all(np.abs(kl_pp) <= tolerance), "KL(p, p) = 0", f"got {kl_pp} (tolerance {tolerance})"
    )
    kl_pq = checker.expect_tensor(dist_p.kl_divergence(dist_q), "KL(p, q)", (batch,))
    checker.expect_finite(kl_pq, "KL(p, q)")
    checker.expect(np.all(kl_pq >= -tolerance), "KL(p, q) >= 0", f"got {kl_pq}")
    checker.expect(
        np.any(kl_pq > tolerance), "KL(p, q) > 0", f"KL is ~0 for different parameters: {kl_pq}"
    )
    return {
        "params_p": params_p,
        "params_q": params_q,
        "dist_p": dist_p,
        "dist_q": dist_q,
        "sample": sample_np,
        "mode": mode_np,
        "log_prob": log_prob,
        "entropy": entropy,
        "kl_pq": kl_pq,
    }


def _check_monte_carlo(
    checker: HeadChecker, head: Any, basics: Mapping[str, Any], num_samples: int, seed: int
) -> None:
    """log_prob agrees with sampling: −E[log p] = H(p) and E[log p − log q] = KL(p, q)."""
    dist_p, dist_q = basics["dist_p"], basics["dist_q"]
    samples = dist_p.sample(num_samples, seed=tf.constant([seed, 2], tf.int32))
    log_p = np.asarray(dist_p.log_prob(samples), np.float64)
    log_q = np.asarray(dist_q.log_prob(samples), np.float64)
    checker.expect_finite(log_p, f"log_prob of {num_samples} samples")
    checker.expect_finite(log_q, f"log_prob under q of {num_samples} samples from p")
    for label, draws, exact in (
        ("entropy() vs −mean log_prob(samples)", -log_p, basics["entropy"]),
        ("KL(p, q) vs mean[log p − log q](samples of p)", log_p - log_q, basics["kl_pq"]),
    ):
        estimate = draws.mean(axis=0)
        standard_error = draws.std(axis=0) / np.sqrt(num_samples)
        slack = 1e-3 * (1.0 + np.abs(exact))
        bad = np.abs(estimate - exact) > Z_SCORE * standard_error + slack
        checker.expect(
            not bad.any(),
            label,
            f"exact {np.round(exact, 4)} vs Monte-Carlo {np.round(estimate, 4)} "
            f"(± {np.round(standard_error, 4)}, {num_samples} samples); log_prob, sample, "
            "entropy and KL must describe the same distribution",
        )


def _check_gradients(checker: HeadChecker, head: Any, basics: Mapping[str, Any], net_q) -> None:
    """log_prob and KL(p_old ‖ q_θ) are differentiable, to second order for the FVP."""
    variables = list(head.trainable_variables)
    sample = tf.constant(basics["sample"])
    params_p = tf.stop_gradient(basics["params_p"])
    net_q = tf.identity(net_q)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch(net_q)
        with tf.GradientTape(persistent=True) as inner:
            inner.watch(net_q)
            dist_q = head.distribution(head.params(net_q))
            mean_kl = tf.reduce_mean(head.distribution(params_p).kl_divergence(dist_q))
            mean_log_prob = tf.reduce_mean(dist_q.log_prob(sample))
        grad_kl = inner.gradient(mean_kl, net_q)
        grad_log_prob = inner.gradient(mean_log_prob, [net_q, *variables])
        direction = tf.ones_like(net_q)
        grad_kl_dot = tf.reduce_sum(grad_kl * direction) if grad_kl is not None else None
    for label, grad in zip(["net_out", *[v.name for v in variables]], grad_log_prob, strict=True):
        checker.expect(
            grad is not None,
            "gradient of log_prob",
            f"None with respect to {label}: every policy parameter must reach log_prob",
        )
        checker.expect_finite(np.asarray(grad), f"gradient of log_prob w.r.t. {label}")
    checker.expect(grad_kl is not None, "gradient of KL(p_old, q)", "None with respect to net_out")
    checker.expect_finite(np.asarray(grad_kl), "gradient of KL(p_old, q)")
    hessian_vector = outer.gradient(grad_kl_dot, net_q)
    checker.expect(
        hessian_vector is not None,
        "Hessian-vector product of KL (Fisher-vector product)",
        "second derivative is None",
    )
    checker.expect_finite(np.asarray(hessian_vector), "Hessian-vector product of KL")
    del inner, outer


def _check_params_rebuild(checker: HeadChecker, head: Any, basics: Mapping[str, Any]) -> None:
    """distribution(params) depends on params alone, never on the head's variables."""
    variables = list(head.trainable_variables)
    if not variables:
        return
    sample = tf.constant(basics["sample"])
    before = np.asarray(head.distribution(basics["params_p"]).log_prob(sample))
    saved = [v.numpy() for v in variables]
    try:
        for variable in variables:
            variable.assign_add(tf.fill(tf.shape(variable), tf.cast(0.37, variable.dtype)))
        after = np.asarray(head.distribution(basics["params_p"]).log_prob(sample))
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
    checker.expect(
        np.allclose(before, after, rtol=1e-6, atol=1e-6),
        "distribution(params) from params alone",
        "log_prob changed when the head's variables changed: rollouts store params as the "
        "behavior policy, so params() must include every state-independent parameter",
    )


def _check_diagnostics(checker: HeadChecker, head: Any, basics: Mapping[str, Any]) -> None:
    from trpo_tf.plugin_errors import allowed_diagnostics

    diagnostics = head.diagnostics(basics["params_p"])
    checker.expect(isinstance(diagnostics, Mapping), "diagnostics(params)", "must return a mapping")
    allowed = allowed_diagnostics()
    for key, value in diagnostics.items():
        checker.expect(
            key in allowed,
            "diagnostics(params) keys",
            f"{key!r} is not a metrics.csv column a head may fill (allowed: {', '.join(allowed)})",
        )
        value = checker.expect_tensor(value, f"diagnostics()[{key!r}]", ())
        checker.expect_finite(value, f"diagnostics()[{key!r}]")


def check_distribution(
    factory: Callable[..., Any],
    action_space: gym.Space,
    *,
    batch_size: int = 8,
    num_samples: int = 4000,
    seed: int = 0,
    jit_compile: bool = True,
    saved_model: bool = True,
    **kwargs: Any,
) -> Any:
    """Checks a ``trpo_tf.distributions`` factory against the DistributionHead contract.

    Builds ``head = factory(action_space, **kwargs)`` (as ``policy.distribution_kwargs``
    would) and feeds it random network outputs ``[batch_size, num_inputs]``. Checks:

    * attributes of the protocol; the head is a ``tf.Module`` (checkpointed with the policy);
    * shapes and dtypes of ``params`` ``[B, param_dim]``, ``sample``/``mode``
      ``[B, *action_shape]`` ``action_dtype``, ``log_prob``/``entropy``/KL ``[B]``; all finite,
      and ``log_prob(mode)`` finite;
    * KL(p, p) = 0, KL(p, q) ≥ 0 and > 0 for different random parameters;
    * log_prob consistent with sampling: −mean log p(x) ≈ H(p) and mean[log p(x) − log q(x)]
      ≈ KL(p, q) over ``num_samples`` draws x ~ p (within 6 standard errors);
    * gradients of log_prob and of KL(stop_gradient(p) ‖ q) reach the network output and every
      trainable variable; the KL's Hessian-vector product (the trainer's FVP) is finite;
    * the trust region constrains every parameter: the diagonal of the Hessian of
      KL(π_old ‖ π(params)) at params = old params is > 0 for each column of ``params``
      that changes ``log_prob`` (a zero makes the Fisher singular and no step is ever
      accepted);
    * ``distribution(params)`` depends on ``params`` alone, not on the head's variables;
    * everything above also runs inside ``tf.function`` (XLA when ``jit_compile``) and agrees;
    * ``numpy_sampler()``, when offered, matches ``params``/``log_prob``/``mode`` and samples
      the same distribution;
    * ``to_env_action`` puts every sampled and mode action inside ``action_space``
      (``action_space.contains`` per row; a float Box also accepts a wider float dtype)
      and leaves its input untouched;
    * the head is exportable: the SavedModel's graph form of ``to_env_action`` exists
      (``to_env_action_graph``, required once a head defines its own ``to_env_action``;
      built-in heads map by the action space) and equals ``to_env_action`` on sampled
      and mode actions;
    * ``diagnostics`` returns finite scalars named after ``metrics.csv`` columns;
    * a ``tf.Module`` wrapping ``mode(params(net_out))`` survives ``tf.saved_model`` save/load.

    Args:
        factory: the entry-point object, ``factory(action_space, **kwargs) -> head``.
        action_space: a space the factory supports.
        batch_size: rows of random network output.
        num_samples: draws per row for the Monte-Carlo checks.
        seed: seeds the random inputs and samples (the check is deterministic).
        jit_compile: compile the ``tf.function`` check with XLA, as training does.
        saved_model: include the SavedModel round trip (slowest part, ~1 s).
        **kwargs: passed to the factory.

    Returns:
        The head that was checked.

    Raises:
        AssertionError: a check failed; the message names the check and the values.
    """
    checker = HeadChecker(factory, action_space)
    head = _build(checker, kwargs)
    dtype = float_dtype(head, kwargs)
    rng = np.random.default_rng(seed)
    net_p = tf.constant(rng.normal(size=(batch_size, head.num_inputs)), dtype)
    net_q = tf.constant(rng.normal(size=(batch_size, head.num_inputs)), dtype)
    basics = _check_basics(checker, head, net_p, net_q, seed)
    _check_monte_carlo(checker, head, basics, num_samples, seed)
    _check_gradients(checker, head, basics, net_q)
    check_trust_region(checker, head, basics, seed)
    _check_params_rebuild(checker, head, basics)
    check_compiled(checker, head, basics, net_p, net_q, seed, jit_compile)
    check_numpy_sampler(checker, head, basics, net_p, num_samples, seed)
    check_env_actions(checker, head, basics)
    _check_diagnostics(checker, head, basics)
    if saved_model:
        check_saved_model(checker, head, basics, net_p)
    return head
