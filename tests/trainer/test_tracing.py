"""Tracing without per-operation stack traces: scoped, restored, opt-out, errors intact."""

from __future__ import annotations

import threading

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.client import pywrap_tf_session

from trpo_tf.distributions import make_categorical
from trpo_tf.networks import build_mlp
from trpo_tf.policy import Policy
from trpo_tf.trainer import TrpoHyperparameters, TrpoUpdate, tracing
from trpo_tf.trainer.tracing import (
    KEEP_TRACEBACKS_ENV,
    traced_without_op_tracebacks,
    without_op_tracebacks,
)


def _mul_op(function) -> tf.Operation:
    graph = function.get_concrete_function(tf.TensorSpec([3])).graph
    return next(op for op in graph.get_operations() if op.type == "Mul")


def _doubler():
    return tf.function(lambda x: x * 2.0, autograph=False)


def test_ops_traced_inside_have_no_stack_trace_and_outside_keep_theirs() -> None:
    setter = pywrap_tf_session.TF_SetOpStackTrace
    with without_op_tracebacks():
        inside = _mul_op(_doubler())
    outside = _mul_op(_doubler())
    assert inside.traceback is None
    assert len(outside.traceback) > 0
    assert pywrap_tf_session.TF_SetOpStackTrace is setter


def test_setter_restored_after_an_exception_and_nested_blocks() -> None:
    setter = pywrap_tf_session.TF_SetOpStackTrace
    with pytest.raises(RuntimeError, match="boom"), without_op_tracebacks():
        with without_op_tracebacks():
            pass
        assert pywrap_tf_session.TF_SetOpStackTrace is not setter  # outer block still open
        raise RuntimeError("boom")
    assert pywrap_tf_session.TF_SetOpStackTrace is setter
    assert tracing._active == 0


def test_overlapping_blocks_in_two_threads_restore_once_both_close() -> None:
    setter = pywrap_tf_session.TF_SetOpStackTrace
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with without_op_tracebacks():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with without_op_tracebacks():
        pass
    # The other thread's block is still open: still off.
    assert pywrap_tf_session.TF_SetOpStackTrace is not setter
    release.set()
    thread.join(10)
    assert pywrap_tf_session.TF_SetOpStackTrace is setter


def test_environment_variable_keeps_stack_traces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEEP_TRACEBACKS_ENV, "1")
    with without_op_tracebacks():
        op = _mul_op(_doubler())
    assert len(op.traceback) > 0


def test_wrapped_function_keeps_its_signature_and_result() -> None:
    def scale(x, factor=3.0):
        """Docstring kept."""
        return x * factor

    wrapped = traced_without_op_tracebacks(scale)
    assert wrapped.__doc__ == "Docstring kept." and wrapped.__wrapped__ is scale
    compiled = tf.function(wrapped, autograph=False)
    np.testing.assert_allclose(compiled(tf.constant([1.0, 2.0])).numpy(), [3.0, 6.0])
    assert _mul_op(tf.function(traced_without_op_tracebacks(lambda x: x * 2.0))).traceback is None


def test_runtime_error_in_such_a_graph_still_names_node_and_message() -> None:
    compiled = tf.function(
        traced_without_op_tracebacks(lambda x: tf.debugging.check_numerics(x, "value is NaN")),
        autograph=False,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="value is NaN") as caught:
        compiled(tf.constant([float("nan")]))
    assert "CheckNumerics" in str(caught.value)


def test_trpo_update_functions_are_traced_without_stack_traces() -> None:
    head = make_categorical(gym.spaces.Discrete(3))
    policy = Policy(build_mlp(4, [8], head.num_inputs, seed=0, name="pi"), head)
    value_network = build_mlp(4, [8], 1, seed=1, name="value")
    hyperparameters = TrpoHyperparameters(cg_iters=3, value_epochs=1, value_minibatch_size=16)
    update = TrpoUpdate(policy, value_network, keras.optimizers.Adam(1e-3), hyperparameters, 32, 4)
    signature = update.policy_update.input_signature
    graph = update.policy_update.get_concrete_function(*signature).graph
    body_ops = [op for op in graph.get_operations() if op.type in ("MatMul", "Mul", "While")]
    assert body_ops and all(op.traceback is None for op in body_ops)
    fit_graph = update.value_fit.get_concrete_function(*update.value_fit.input_signature).graph
    assert all(op.traceback is None for op in fit_graph.get_operations() if op.type == "While")


def test_update_traced_with_or_without_stack_traces_computes_the_same_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def step(keep: bool) -> tuple[dict, list]:
        if keep:
            monkeypatch.setenv(KEEP_TRACEBACKS_ENV, "1")
        else:
            monkeypatch.delenv(KEEP_TRACEBACKS_ENV, raising=False)
        head = make_categorical(gym.spaces.Discrete(3))
        policy = Policy(build_mlp(4, [8], head.num_inputs, seed=0, name="pi"), head)
        hyperparameters = TrpoHyperparameters(cg_iters=4, value_epochs=1, value_minibatch_size=16)
        update = TrpoUpdate(
            policy,
            build_mlp(4, [8], 1, seed=1, name="value"),
            keras.optimizers.Adam(1e-3),
            hyperparameters,
            32,
            4,
        )
        rng = np.random.default_rng(0)
        batch = (
            rng.normal(size=(32, 4)).astype(np.float32),
            rng.integers(0, 3, 32),
            np.full(32, np.log(1 / 3), np.float32),
            rng.normal(size=32).astype(np.float32),
        )
        graph = update.policy_update.get_concrete_function(*update.policy_update.input_signature)
        mul = next(op for op in graph.graph.get_operations() if op.type == "MatMul")
        assert (mul.traceback is not None) == keep
        metrics = {k: float(v) for k, v in update.run_policy_step(*batch).items()}
        return metrics, [v.numpy() for v in policy.policy_variables]

    (kept, theta_kept), (dropped, theta_dropped) = step(True), step(False)
    assert kept == dropped
    for a, b in zip(theta_kept, theta_dropped, strict=True):
        np.testing.assert_array_equal(a, b)
