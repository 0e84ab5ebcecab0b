"""Conjugate gradient against a dense solve, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.trainer.cg import conjugate_gradient, conjugate_gradient_with_residual


def _spd(n: int, seed: int, condition: float = 10.0) -> np.ndarray:
    """A random SPD matrix with eigenvalues spread over [1, condition]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eigenvalues = np.geomspace(1.0, condition, n)
    rng.shuffle(eigenvalues)
    a = (q * eigenvalues) @ q.T
    return 0.5 * (a + a.T)


def _matvec(a: np.ndarray):
    a_tf = tf.constant(a, tf.float64)
    calls = []

    def matvec(v: tf.Tensor) -> tf.Tensor:
        calls.append(1)
        return tf.linalg.matvec(a_tf, v)

    return matvec, calls


def _reference_cg(a: np.ndarray, b: np.ndarray, iterations: int) -> np.ndarray:
    """Textbook CG in numpy (no early exit)."""
    x, r, p = np.zeros_like(b), b.copy(), b.copy()
    rr = r @ r
    for _ in range(iterations):
        fp = a @ p
        alpha = rr / (p @ fp)
        x, r = x + alpha * p, r - alpha * fp
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


@pytest.mark.parametrize("n", [5, 12, 30])
def test_matches_dense_solve(n: int) -> None:
    # Well conditioned, so n iterations reach ~1e-13 despite the loss of
    # orthogonality in floating point (at condition 1e3, n iterations leave ~1e-3).
    a = _spd(n, seed=n)
    b = np.random.default_rng(100 + n).normal(size=n)
    matvec, _ = _matvec(a)
    x = conjugate_gradient(matvec, tf.constant(b, tf.float64), iterations=n, residual_tol=1e-30)
    assert x.dtype == tf.float64
    assert x.shape == (n,)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_zero_rhs_exits_before_any_product() -> None:
    matvec, calls = _matvec(_spd(6, seed=1))
    x = conjugate_gradient(matvec, tf.zeros([6], tf.float64), iterations=10)
    assert np.all(np.isfinite(x.numpy()))
    assert np.array_equal(x.numpy(), np.zeros(6))
    assert calls == []


def test_stops_once_residual_is_below_tolerance() -> None:
    # For A = c·I the first iteration solves the system exactly: r₁ = 0.
    matvec, calls = _matvec(3.0 * np.eye(7))
    b = np.arange(1.0, 8.0)
    x = conjugate_gradient(matvec, tf.constant(b, tf.float64), iterations=10)
    np.testing.assert_allclose(x.numpy(), b / 3.0, rtol=1e-14)
    assert len(calls) == 1


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e6])
def test_stopping_test_is_relative_to_the_right_hand_side(scale: float) -> None:
    # rᵀr is compared with residual_tol · bᵀb: c·b takes the same iterations as b and
    # gives c times its solution, however small c·b is (an absolute test would stop a
    # tiny b before its first product and return x = 0).
    a = _spd(12, seed=9, condition=50.0)
    b = np.random.default_rng(9).normal(size=12)
    matvec, calls = _matvec(a)
    reference = conjugate_gradient(matvec, tf.constant(b), 30, residual_tol=1e-10).numpy()
    reference_calls = len(calls)
    assert 1 < reference_calls < 30  # converged, by the tolerance and not the limit
    calls.clear()
    x = conjugate_gradient(matvec, tf.constant(scale * b), 30, residual_tol=1e-10).numpy()
    assert len(calls) == reference_calls
    np.testing.assert_allclose(x / scale, reference, rtol=1e-6)
    np.testing.assert_allclose(x / scale, np.linalg.solve(a, b), rtol=1e-4)


def test_respects_iteration_limit() -> None:
    matvec, calls = _matvec(_spd(10, seed=3))
    b = tf.constant(np.ones(10), tf.float64)
    conjugate_gradient(matvec, b, iterations=3, residual_tol=0.0)
    assert len(calls) == 3


@pytest.mark.parametrize("k", [1, 2, 5, 13])
def test_iterates_match_textbook_cg(k: int) -> None:
    n = 20
    a = _spd(n, seed=21, condition=20.0)
    b = np.random.default_rng(22).normal(size=n)
    matvec, _ = _matvec(a)
    x = conjugate_gradient(matvec, tf.constant(b, tf.float64), k, residual_tol=1e-30)
    expected = _reference_cg(a, b, k)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_error_in_a_norm_does_not_increase() -> None:
    n = 20
    a = _spd(n, seed=7, condition=1e3)
    b = np.random.default_rng(8).normal(size=n)
    exact = np.linalg.solve(a, b)
    matvec, _ = _matvec(a)
    errors = []
    # 2n iterations: in floating point CG needs more than n at this condition number.
    for k in range(2 * n + 1):
        x = conjugate_gradient(matvec, tf.constant(b, tf.float64), k, residual_tol=1e-30).numpy()
        e = x - exact
        errors.append(float(e @ a @ e))
    assert errors[0] == pytest.approx(float(exact @ a @ exact))
    for k in range(2 * n):
        assert errors[k + 1] <= errors[k] * (1 + 1e-9) + 1e-20, (k, errors)
    assert errors[-1] < 1e-12 * errors[0]


def test_works_inside_tf_function() -> None:
    n = 9
    a = _spd(n, seed=11)
    b = np.random.default_rng(12).normal(size=n)
    a_tf = tf.constant(a)

    @tf.function(input_signature=[tf.TensorSpec([n], tf.float64)])
    def solve(rhs):
        return conjugate_gradient(lambda v: tf.linalg.matvec(a_tf, v), rhs, n, 1e-30)

    np.testing.assert_allclose(solve(tf.constant(b)).numpy(), np.linalg.solve(a, b), rtol=1e-8)
    np.testing.assert_allclose(solve(tf.constant(-2 * b)).numpy(), -2 * np.linalg.solve(a, b))
    assert solve.experimental_get_tracing_count() == 1
    zero = solve(tf.zeros([n], tf.float64)).numpy()
    assert np.array_equal(zero, np.zeros(n))


def test_float32() -> None:
    a = _spd(8, seed=5, condition=10.0)
    b = np.random.default_rng(6).normal(size=8)
    a32 = tf.constant(a, tf.float32)
    x = conjugate_gradient(lambda v: tf.linalg.matvec(a32, v), tf.constant(b, tf.float32), 8)
    assert x.dtype == tf.float32
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_residual_gives_the_product_of_the_solution() -> None:
    # sᵀFs is read as sᵀ(b − r); r must equal b − F x up to rounding, converged or not.
    a = _spd(20, seed=4, condition=1e3)
    b = np.random.default_rng(4).normal(size=20)
    matvec, _ = _matvec(a)
    for iterations in (3, 20):
        x, r = conjugate_gradient_with_residual(matvec, tf.constant(b), iterations, 1e-30)
        np.testing.assert_allclose(r.numpy(), b - a @ x.numpy(), atol=1e-10)
        assert float(x.numpy() @ (b - r.numpy())) == pytest.approx(x.numpy() @ a @ x.numpy())


def test_without_early_exit_runs_every_product_and_keeps_the_converged_result() -> None:
    # A = 3·I converges in one iteration; the remaining ones must change nothing.
    a, b = 3.0 * np.eye(7), tf.constant(np.arange(1.0, 8.0))
    matvec, calls = _matvec(a)
    x_stop, r_stop = conjugate_gradient_with_residual(matvec, b, 10)
    assert len(calls) == 1
    x_all, r_all = conjugate_gradient_with_residual(matvec, b, 10, early_exit=False)
    assert len(calls) == 1 + 10
    assert np.array_equal(x_all.numpy(), x_stop.numpy())
    assert np.array_equal(r_all.numpy(), r_stop.numpy())


def test_without_early_exit_a_zero_rhs_stays_zero() -> None:
    # rᵀr = 0 from the start: every α and β is 0/0, and none of it may leak into x.
    matvec, calls = _matvec(_spd(6, seed=1))
    x, r = conjugate_gradient_with_residual(matvec, tf.zeros([6], tf.float64), 4, early_exit=False)
    assert len(calls) == 4
    assert np.array_equal(x.numpy(), np.zeros(6))
    assert np.array_equal(r.numpy(), np.zeros(6))


@pytest.mark.parametrize("k", [1, 5, 13])
def test_without_early_exit_iterates_match_textbook_cg(k: int) -> None:
    a = _spd(20, seed=21, condition=20.0)
    b = np.random.default_rng(22).normal(size=20)
    matvec, _ = _matvec(a)
    x = conjugate_gradient(matvec, tf.constant(b), k, residual_tol=1e-30, early_exit=False)
    np.testing.assert_allclose(x.numpy(), _reference_cg(a, b, k), rtol=1e-9, atol=1e-12)


def _loop_predicate_dtypes(early_exit: bool) -> set[str]:
    """dtypes the compiled CG loop's condition computes with."""

    @tf.function(input_signature=[tf.TensorSpec([4], tf.float32)], autograph=False)
    def solve(b):
        return conjugate_gradient(lambda v: 2.0 * v, b, 5, early_exit=early_exit)

    graph_def = solve.get_concrete_function().graph.as_graph_def()
    loops = [node for node in graph_def.node if node.op in ("While", "StatelessWhile")]
    assert len(loops) == 1
    cond_name = loops[0].attr["cond"].func.name
    (cond,) = [f for f in graph_def.library.function if f.signature.name == cond_name]
    return {
        tf.dtypes.as_dtype(attr.type).name
        for node in cond.node_def
        for attr in node.attr.values()
        if attr.type
    }


def test_without_early_exit_the_loop_predicate_needs_no_device_value() -> None:
    # On a GPU an int32 predicate stays in host memory; a float one (rᵀr ≥ tol) is a
    # device-to-host read every iteration.
    assert _loop_predicate_dtypes(early_exit=False) <= {"int32", "bool"}
    assert "float32" in _loop_predicate_dtypes(early_exit=True)
