"""Checks of a distribution head where the trainer runs it: compiled graphs (XLA),
the numpy rollout twin, env actions (and their graph twin), SavedModel export."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from trpo_tf.testing.head_checker import Z_SCORE, HeadChecker, env_contains


def check_compiled(
    checker: HeadChecker,
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


def check_numpy_sampler(
    checker: HeadChecker,
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
        abs(draws.mean() - exact) <= Z_SCORE * standard_error + 1e-3 * (1.0 + abs(exact)),
        "numpy_sampler() draws match entropy()",
        f"−mean log_prob {draws.mean():.4f} ± {standard_error:.4f} vs entropy {exact:.4f}",
    )


def check_env_actions(checker: HeadChecker, head: Any, basics: Mapping[str, Any]) -> None:
    """to_env_action maps samples and modes into the action space, without mutating them,
    and the exporter's graph form of it (``to_env_action_graph``) exists and agrees."""
    space = checker.action_space
    to_env_graph = _exported_env_action(checker, head)
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
                env_contains(space, row),
                f"to_env_action({label}) inside the action space",
                f"row {index} = {row!r} (dtype {np.asarray(row).dtype}) is not in {space}",
            )
        graph_actions = np.asarray(to_env_graph(tf.constant(actions)))
        checker.expect(
            graph_actions.shape == env_actions.shape
            and np.allclose(graph_actions, env_actions, rtol=1e-5, atol=1e-5),
            f"to_env_action_graph({label})",
            "differs from to_env_action (the exported SavedModel would act differently "
            f"from training): max |Δ| = {_max_difference(graph_actions, env_actions)}",
        )


def _exported_env_action(checker: HeadChecker, head: Any) -> Callable[[tf.Tensor], tf.Tensor]:
    """The env-action mapping the exporter would put in the SavedModel, or a failure
    saying that ``trpo-tf export`` (and the export at the end of training) would refuse."""
    from trpo_tf.errors import IncompatibleSpaceError
    from trpo_tf.export.module import env_action_fn

    try:
        return env_action_fn(head, checker.action_space)
    except IncompatibleSpaceError as error:
        raise AssertionError(
            f"{checker.context}: exportable (to_env_action_graph): export would be refused "
            f"and training would end with 'export skipped' ({error}); add "
            f"{type(head).__name__}.to_env_action_graph(actions: tf.Tensor) -> tf.Tensor "
            "doing what to_env_action does with TensorFlow ops"
        ) from error


def _max_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {a.shape} vs {b.shape}"
    return f"{np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0):.3g}"


class _ModeModule(tf.Module):
    def __init__(self, head: Any, num_inputs: int, dtype: tf.DType) -> None:
        super().__init__(name="mode_module")
        self.head = head
        self.mode = tf.function(
            self._mode, input_signature=[tf.TensorSpec([None, num_inputs], dtype)]
        )

    def _mode(self, net_out):
        return self.head.mode(self.head.params(net_out))


def check_saved_model(
    checker: HeadChecker, head: Any, basics: Mapping[str, Any], net_p: tf.Tensor
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
