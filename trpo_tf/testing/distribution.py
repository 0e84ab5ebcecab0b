"""``check_distribution``: a distribution head against the DistributionHead contract."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from trpo_tf.interfaces import DistributionHead

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
# The metrics.csv columns a head's diagnostics may fill: metrics.csv rejects unknown
# names, and every other column belongs to the trainer or the training loop.
HEAD_DIAGNOSTIC_COLUMNS = ("policy_std",)
# Monte-Carlo agreement: |estimate − exact| ≤ Z · standard error + slack.
_Z = 6.0


class _Checker:
    """Holds the head under test and formats failures."""

    def __init__(self, factory: Callable[..., Any], action_space: gym.Space) -> None:
        self.factory = factory
        self.action_space = action_space
        name = getattr(factory, "__qualname__", None) or repr(factory)
        self.context = f"check_distribution({name}, {action_space})"

    def fail(self, check: str, detail: str) -> None:
        raise AssertionError(f"{self.context}: {check}: {detail}")

    def expect(self, condition: Any, check: str, detail: str) -> None:
        if not condition:
            self.fail(check, detail)

    def expect_tensor(
        self, value: Any, check: str, shape: tuple[int, ...], dtype: tf.DType | None = None
    ) -> np.ndarray:
        """``value`` converts to a tensor of ``shape`` (and ``dtype``); returns numpy."""
        try:
            tensor = tf.convert_to_tensor(value)
        except (TypeError, ValueError) as error:
            self.fail(check, f"returned {type(value).__name__}, not a tensor ({error})")
        self.expect(
            tuple(tensor.shape) == tuple(shape),
            check,
            f"shape {tuple(tensor.shape)}, expected {tuple(shape)}",
        )
        if dtype is not None:
            self.expect(
                tensor.dtype == dtype, check, f"dtype {tensor.dtype.name}, expected {dtype.name}"
            )
        return tensor.numpy()

    def expect_finite(self, array: np.ndarray, check: str) -> None:
        bad = ~np.isfinite(np.asarray(array, np.float64))
        self.expect(not bad.any(), check, f"{int(bad.sum())} non-finite value(s): {array}")


def _float_dtype(head: Any, kwargs: Mapping[str, Any]) -> tf.DType:
    if "dtype" in kwargs:
        return tf.as_dtype(kwargs["dtype"])
    for variable in head.trainable_variables:
        return variable.dtype
    return tf.float32


def _kl_tolerance(dtype: tf.DType) -> float:
    return 1e-10 if dtype == tf.float64 else 2e-5


def _env_contains(space: gym.Space, row: Any) -> bool:
    """Whether ``env.step`` accepts ``row``: in the space, or a float Box row that
    casts to the space's dtype without changing kind (float64 for float32)."""
    if space.contains(row):
        return True
    if isinstance(space, gym.spaces.Box):
        row = np.asarray(row)
        return bool(
            row.shape == space.shape
            and np.can_cast(row.dtype, space.dtype, casting="same_kind")
            and space.contains(row.astype(space.dtype))
        )
    return False


def _build(checker: _Checker, kwargs: Mapping[str, Any]) -> Any:
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
    checker: _Checker, head: Any, net_p: tf.Tensor, net_q: tf.Tensor, seed: int
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
    tolerance = _kl_tolerance(net_p.dtype)
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
    checker: _Checker, head: Any, basics: Mapping[str, Any], num_samples: int, seed: int
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
        bad = np.abs(estimate - exact) > _Z * standard_error + slack
        checker.expect(
            not bad.any(),
            label,
            f"exact {np.round(exact, 4)} vs Monte-Carlo {np.round(estimate, 4)} "
            f"(± {np.round(standard_error, 4)}, {num_samples} samples); log_prob, sample, "
            "entropy and KL must describe the same distribution",
        )


def _check_gradients(checker: _Checker, head: Any, basics: Mapping[str, Any], net_q) -> None:
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


def _check_params_rebuild(checker: _Checker, head: Any, basics: Mapping[str, Any]) -> None:
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


def _check_compiled(
    checker: _Checker,
    head: Any,
    basics: Mapping[str, Any],
    net_p: tf.Tensor,
    net_q: tf.Tensor,
    seed: int,
    jit_compile: bool,
) -> None:
    """The same computations inside ``tf.function`` (XLA, as the trainer and actor do)."""

    def graph(net_p, net_q, seed):
        dist_p = head.distribution(head.params(net_p))
        action = dist_p.sample(seed=seed)
        fixed_p = head.distribution(tf.stop_gradient(head.params(net_p)))
        # Differentiated as the update does.
        with tf.GradientTape() as tape:
            tape.watch(net_q)
            dist_q = head.distribution(head.params(net_q))
            objective = tf.reduce_sum(dist_q.log_prob(action)) + tf.reduce_sum(
                fixed_p.kl_divergence(dist_q)
            )
        gradient = tape.gradient(objective, net_q)
        return (
            action,
            dist_p.log_prob(action),
            dist_p.kl_divergence(dist_q),
            dist_p.entropy(),
            head.mode(head.params(net_p)),
            gradient,
        )

    where = "tf.function(jit_compile=True)" if jit_compile else "tf.function"
    # The trainer traces without autograph (faster start): heads must use TF control
    # flow (tf.where, tf.cond), not Python ``if``/``for`` on tensors.
    compiled = tf.function(graph, jit_compile=jit_compile, autograph=False)
    try:
        action, log_prob, kl, entropy, mode, gradient = compiled(
            net_p, net_q, tf.constant([seed, 3], tf.int32)
        )
    except Exception as error:
        hint = (
            " (traced without autograph, as the trainer does: use tf.where/tf.cond, not "
            "Python if/for on tensors"
            + (
                "; with trainer.jit_compile: true and in the TensorFlow actor, under XLA)"
                if jit_compile
                else ")"
            )
        )
        raise AssertionError(
            f"{checker.context}: {where}: sample/log_prob/KL/entropy/mode failed{hint}: "
            f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"
        ) from error
    checker.expect_finite(np.asarray(gradient), f"{where} gradient of log_prob and KL")
    batch = int(net_p.shape[0])
    checker.expect_tensor(
        action, f"{where} sample()", (batch, *head.action_shape), head.action_dtype
    )
    eager_log_prob = np.asarray(basics["dist_p"].log_prob(action))
    for label, graph_value, eager_value in (
        ("log_prob", log_prob, eager_log_prob),
        ("KL(p, q)", kl, basics["kl_pq"]),
        ("entropy", entropy, basics["entropy"]),
        ("mode", mode, basics["mode"]),
    ):
        graph_value = np.asarray(graph_value, np.float64)
        eager_value = np.asarray(eager_value, np.float64)
        checker.expect(
            np.allclose(graph_value, eager_value, rtol=1e-4, atol=1e-4),
            f"{where} {label} equals eager",
            f"{graph_value} vs {eager_value}",
        )


def _check_numpy_sampler(
    checker: _Checker,
    head: Any,
    basics: Mapping[str, Any],
    net_p: tf.Tensor,
    num_samples: int,
    seed: int,
) -> None:
    """The optional numpy twin samples the same distribution with the same log-probs."""
    if not hasattr(head, "numpy_sampler"):
        return
    sampler = head.numpy_sampler()
    rng = np.random.default_rng(seed)
    net_np = np.asarray(net_p)
    batch = net_np.shape[0]
    actions, log_prob, params = sampler.sample(net_np, rng)
    numpy_dtype = np.dtype(head.action_dtype.as_numpy_dtype)
    actions = np.asarray(actions)
    # The rollout copies them into an action_dtype buffer: the kind must match.
    checker.expect(
        actions.shape == (batch, *head.action_shape)
        and np.can_cast(actions.dtype, numpy_dtype, casting="same_kind"),
        "numpy_sampler().sample actions",
        f"shape {actions.shape} dtype {actions.dtype}, expected "
        f"{(batch, *head.action_shape)} {numpy_dtype}",
    )
    checker.expect(
        np.asarray(log_prob).shape == (batch,),
        "numpy_sampler().sample log_prob",
        f"shape {np.asarray(log_prob).shape}, expected ({batch},)",
    )
    checker.expect(
        np.allclose(params, np.asarray(basics["params_p"]), rtol=1e-5, atol=1e-5),
        "numpy_sampler().sample params equal params(net_out)",
        f"{params} vs {np.asarray(basics['params_p'])}",
    )
    expected = basics["dist_p"].log_prob(tf.constant(actions.astype(numpy_dtype)))
    expected = np.asarray(expected, np.float64)
    checker.expect(
        np.allclose(log_prob, expected, rtol=1e-4, atol=1e-4),
        "numpy_sampler() log_prob equals distribution(params).log_prob",
        f"{log_prob} vs {expected}",
    )
    mode = np.asarray(sampler.mode(net_np))
    checker.expect(
        mode.shape == basics["mode"].shape
        and np.allclose(mode, basics["mode"], rtol=1e-5, atol=1e-5),
        "numpy_sampler().mode equals mode(params)",
        f"{mode} vs {basics['mode']}",
    )
    # Its draws follow the distribution: −mean log π of the first row's draws ≈ H.
    tiled = np.repeat(net_np[:1], num_samples, axis=0)
    _, draws_log_prob, _ = sampler.sample(tiled, rng)
    draws = -np.asarray(draws_log_prob, np.float64)
    exact = float(basics["entropy"][0])
    standard_error = draws.std() / np.sqrt(num_samples)
    checker.expect(
        abs(draws.mean() - exact) <= _Z * standard_error + 1e-3 * (1.0 + abs(exact)),
        "numpy_sampler() draws match entropy()",
        f"−mean log_prob {draws.mean():.4f} ± {standard_error:.4f} vs entropy {exact:.4f}",
    )


def _check_env_actions(checker: _Checker, head: Any, basics: Mapping[str, Any]) -> None:
    """to_env_action maps samples and modes into the action space, without mutating them."""
    space = checker.action_space
    for label in ("sample", "mode"):
        actions = np.asarray(basics[label])
        original = actions.copy()
        env_actions = head.to_env_action(actions)
        checker.expect(
            np.array_equal(actions, original),
            f"to_env_action({label})",
            "modified its input in place (the rollout stores the raw action)",
        )
        env_actions = np.asarray(env_actions)
        checker.expect(
            env_actions.shape[:1] == actions.shape[:1],
            f"to_env_action({label})",
            f"returned {env_actions.shape[0] if env_actions.ndim else 'a scalar'} rows for "
            f"{actions.shape[0]} actions",
        )
        for index, row in enumerate(env_actions):
            checker.expect(
                _env_contains(space, row),
                f"to_env_action({label}) inside the action space",
                f"row {index} = {row!r} (dtype {np.asarray(row).dtype}) is not in {space}",
            )
        graph_twin = getattr(head, "to_env_action_graph", None)
        if graph_twin is not None:
            graph_actions = np.asarray(graph_twin(tf.constant(actions)))
            checker.expect(
                graph_actions.shape == env_actions.shape
                and np.allclose(graph_actions, env_actions, rtol=1e-5, atol=1e-5),
                f"to_env_action_graph({label})",
                "differs from to_env_action (the exported SavedModel would act differently "
                f"from training): max |Δ| = {_max_difference(graph_actions, env_actions)}",
            )


def _max_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    return f"{np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0):.3g}"


def _check_diagnostics(checker: _Checker, head: Any, basics: Mapping[str, Any]) -> None:
    from trpo_tf.tracking.run_dir import METRIC_COLUMNS

    diagnostics = head.diagnostics(basics["params_p"])
    checker.expect(isinstance(diagnostics, Mapping), "diagnostics(params)", "must return a mapping")
    allowed = [column for column in HEAD_DIAGNOSTIC_COLUMNS if column in METRIC_COLUMNS]
    for key, value in diagnostics.items():
        checker.expect(
            key in allowed,
            "diagnostics(params) keys",
            f"{key!r} is not a metrics.csv column a head may fill (allowed: {', '.join(allowed)})",
        )
        value = checker.expect_tensor(value, f"diagnostics()[{key!r}]", ())
        checker.expect_finite(value, f"diagnostics()[{key!r}]")


class _ModeModule(tf.Module):
    def __init__(self, head: Any, num_inputs: int, dtype: tf.DType) -> None:
        super().__init__(name="mode_module")
        self.head = head
        self.mode = tf.function(
            self._mode, input_signature=[tf.TensorSpec([None, num_inputs], dtype)]
        )

    def _mode(self, net_out):
        return self.head.mode(self.head.params(net_out))


def _check_saved_model(
    checker: _Checker, head: Any, basics: Mapping[str, Any], net_p: tf.Tensor
) -> None:
    """A tf.Module calling params() + mode() survives tf.saved_model.save/load."""
    module = _ModeModule(head, head.num_inputs, net_p.dtype)
    with tempfile.TemporaryDirectory(prefix="trpo_tf_check_") as directory:
        try:
            tf.saved_model.save(module, directory)
            loaded = tf.saved_model.load(directory)
            restored = np.asarray(loaded.mode(net_p))
        except Exception as error:
            raise AssertionError(
                f"{checker.context}: tf.saved_model save/load of mode(params(net_out)) failed "
                f"(make the head a tf.Module that tracks its variables): "
                f"{type(error).__name__}: {' '.join(str(error).split())[:500]}"
            ) from error
    checker.expect(
        np.allclose(restored, basics["mode"], rtol=1e-6, atol=1e-6),
        "SavedModel mode equals in-memory mode",
        f"{restored} vs {basics['mode']}",
    )


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
    * ``distribution(params)`` depends on ``params`` alone, not on the head's variables;
    * everything above also runs inside ``tf.function`` (XLA when ``jit_compile``) and agrees;
    * ``numpy_sampler()``, when offered, matches ``params``/``log_prob``/``mode`` and samples
      the same distribution;
    * ``to_env_action`` puts every sampled and mode action inside ``action_space``
      (``action_space.contains`` per row; a float Box also accepts a wider float dtype)
      and leaves its input untouched;
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
    checker = _Checker(factory, action_space)
    head = _build(checker, kwargs)
    dtype = _float_dtype(head, kwargs)
    rng = np.random.default_rng(seed)
    net_p = tf.constant(rng.normal(size=(batch_size, head.num_inputs)), dtype)
    net_q = tf.constant(rng.normal(size=(batch_size, head.num_inputs)), dtype)
    basics = _check_basics(checker, head, net_p, net_q, seed)
    _check_monte_carlo(checker, head, basics, num_samples, seed)
    _check_gradients(checker, head, basics, net_q)
    _check_params_rebuild(checker, head, basics)
    _check_compiled(checker, head, basics, net_p, net_q, seed, jit_compile)
    _check_numpy_sampler(checker, head, basics, net_p, num_samples, seed)
    _check_env_actions(checker, head, basics)
    _check_diagnostics(checker, head, basics)
    if saved_model:
        _check_saved_model(checker, head, basics, net_p)
    return head
