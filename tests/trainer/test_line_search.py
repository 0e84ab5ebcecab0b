"""Backtracking line search on a hand-made quadratic problem (float64).

θ is split over a tf.Variable matrix, a Keras variable and a tf.Variable vector.
J(θ) = −‖θ − target‖², KL(θ) = c·‖θ − θ_old‖², so each candidate's KL and
improvement are known in closed form.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.trainer.flat import get_flat
from trpo_tf.trainer.line_search import LineSearchResult, backtracking_line_search

# Values that do not survive arithmetic: θ_old + βᵏ·s − βᵏ·s ≠ θ_old in general.
INITIAL = [
    np.array([[0.1, 1 / 3], [2 / 3, -0.7], [1e-17, np.pi]]),
    np.array([1 / 3, -0.1, 1 / 7]),
    np.array([0.1 + 0.2, np.e]),
]
MAX_KL = 0.01


class Problem:
    def __init__(self, direction_sign: float = 1.0, kl_at_full_step: float = 0.5 * MAX_KL):
        self.variables = [
            tf.Variable(INITIAL[0], dtype=tf.float64),
            keras.Variable(INITIAL[1], dtype="float64"),
            tf.Variable(INITIAL[2], dtype=tf.float64),
        ]
        self.theta_old = get_flat(self.variables)
        rng = np.random.default_rng(0)
        direction = rng.normal(size=int(self.theta_old.shape[0]))
        self.full_step = tf.constant(direction_sign * direction)
        self.target = self.theta_old + tf.constant(direction)  # J is maximal at the full step
        self.kl_scale = kl_at_full_step / float(np.sum(direction**2))
        self.surrogate_old = self.surrogate(self.theta_old)

    def surrogate(self, theta):
        return -tf.reduce_sum(tf.square(theta - self.target))

    def kl(self, theta):
        return self.kl_scale * tf.reduce_sum(tf.square(theta - self.theta_old))

    def evaluate(self):
        theta = get_flat(self.variables)
        return self.surrogate(theta), self.kl(theta)

    def search(self, evaluate=None, max_kl=MAX_KL, max_steps=10, backtrack=0.5):
        return backtracking_line_search(
            self.variables,
            self.theta_old,
            self.full_step,
            self.surrogate_old,
            evaluate or self.evaluate,
            max_kl=max_kl,
            max_steps=max_steps,
            backtrack=backtrack,
        )

    def values(self) -> list[np.ndarray]:
        return [np.asarray(v.numpy()) for v in self.variables]

    def assert_restored(self) -> None:
        for value, initial in zip(self.values(), INITIAL, strict=True):
            assert value.dtype == np.float64
            assert np.array_equal(value, initial), (value, initial)


def _as_numpy(result: LineSearchResult) -> dict:
    return {k: v.numpy() for k, v in result._asdict().items()}


def test_accepts_full_step() -> None:
    problem = Problem()
    result = _as_numpy(problem.search())
    assert result["accepted"]
    assert result["steps"] == 1
    assert result["step_fraction"] == 1.0
    assert result["kl"] == pytest.approx(0.5 * MAX_KL, rel=1e-12)
    expected_improvement = float(tf.reduce_sum(tf.square(problem.full_step)))
    assert result["improvement"] == pytest.approx(expected_improvement, rel=1e-12)
    theta = get_flat(problem.variables).numpy()
    np.testing.assert_allclose(
        theta, (problem.theta_old + problem.full_step).numpy(), rtol=0, atol=1e-15
    )


def test_backtracks_when_full_step_violates_kl() -> None:
    problem = Problem(kl_at_full_step=3.0 * MAX_KL)
    result = _as_numpy(problem.search(backtrack=0.5))
    assert result["accepted"]
    assert result["steps"] == 2
    assert result["step_fraction"] == 0.5
    assert result["kl"] <= MAX_KL
    assert result["kl"] == pytest.approx(0.75 * MAX_KL, rel=1e-12)
    assert result["improvement"] > 0
    theta = get_flat(problem.variables).numpy()
    expected = (problem.theta_old + 0.5 * problem.full_step).numpy()
    np.testing.assert_allclose(theta, expected, rtol=0, atol=1e-15)
    surrogate, kl = problem.evaluate()
    assert float(kl) == pytest.approx(result["kl"], rel=1e-12)
    assert float(surrogate - problem.surrogate_old) == pytest.approx(
        result["improvement"], rel=1e-12
    )


def test_backtracks_several_times_with_default_shrink() -> None:
    # KL ∝ fraction²: with β = 0.8 and KL(full) = 2δ the candidates have KL
    # 2δ, 1.28δ, 0.8192δ, so the third one (fraction 0.64) is the first accepted.
    problem = Problem(kl_at_full_step=2.0 * MAX_KL)
    result = _as_numpy(problem.search(backtrack=0.8))
    fractions = 0.8 ** np.arange(10)
    first_ok = int(np.argmax(2.0 * MAX_KL * fractions**2 <= MAX_KL))
    assert first_ok == 2
    assert result["accepted"]
    assert result["steps"] == first_ok + 1
    assert result["step_fraction"] == pytest.approx(fractions[first_ok], rel=1e-14)
    assert result["kl"] <= MAX_KL


def _assert_rejected(problem: Problem, result: LineSearchResult, max_steps: int = 10) -> None:
    result = _as_numpy(result)
    assert not result["accepted"]
    assert result["steps"] == max_steps
    assert result["kl"] == 0.0
    assert result["improvement"] == 0.0
    assert result["step_fraction"] == 0.0
    problem.assert_restored()


def test_rejects_and_restores_bit_exactly_when_nothing_improves() -> None:
    problem = Problem(direction_sign=-1.0)  # every candidate moves away from the optimum
    _assert_rejected(problem, problem.search())


def test_rejects_when_every_candidate_violates_kl() -> None:
    problem = Problem(kl_at_full_step=1e9 * MAX_KL)
    _assert_rejected(problem, problem.search(max_steps=4, backtrack=0.5), max_steps=4)


def test_zero_improvement_is_not_accepted() -> None:
    problem = Problem()
    result = problem.search(evaluate=lambda: (problem.surrogate_old, tf.constant(0.0, tf.float64)))
    _assert_rejected(problem, result)


def test_nan_surrogate_is_never_accepted() -> None:
    problem = Problem()
    nan = tf.constant(np.nan, tf.float64)
    _assert_rejected(problem, problem.search(evaluate=lambda: (nan, problem.evaluate()[1])))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_kl_is_never_accepted(bad: float) -> None:
    problem = Problem()
    value = tf.constant(bad, tf.float64)
    _assert_rejected(problem, problem.search(evaluate=lambda: (problem.evaluate()[0], value)))


def test_nan_on_full_step_then_accepts_smaller_step() -> None:
    problem = Problem()

    def evaluate():
        surrogate, kl = problem.evaluate()
        # NaN on the full step only (its KL is 0.5·δ; the next candidate's is 0.125·δ)
        return tf.where(kl > 0.3 * MAX_KL, tf.constant(np.nan, tf.float64), surrogate), kl

    result = _as_numpy(problem.search(evaluate=evaluate, backtrack=0.5))
    assert result["accepted"]
    assert result["steps"] == 2
    assert np.isfinite(result["improvement"]) and result["improvement"] > 0


def test_inside_tf_function_accepts_and_rejects() -> None:
    for sign, accepted in [(1.0, True), (-1.0, False)]:
        problem = Problem(direction_sign=sign, kl_at_full_step=3.0 * MAX_KL)

        @tf.function
        def run(problem=problem):
            return problem.search(backtrack=0.5)

        result = _as_numpy(run())
        assert bool(result["accepted"]) is accepted
        if accepted:
            assert result["steps"] == 2
            assert result["kl"] <= MAX_KL
            np.testing.assert_allclose(
                get_flat(problem.variables).numpy(),
                (problem.theta_old + 0.5 * problem.full_step).numpy(),
                rtol=0,
                atol=1e-15,
            )
        else:
            assert result["steps"] == 10
            assert result["kl"] == 0.0 and result["improvement"] == 0.0
            problem.assert_restored()
        # a second call from the moved (or restored) θ does not retrace
        run()
        assert run.experimental_get_tracing_count() == 1


def test_rejection_inside_tf_function_with_nan() -> None:
    problem = Problem()
    nan = tf.constant(np.nan, tf.float64)

    @tf.function
    def run():
        return problem.search(evaluate=lambda: (nan + problem.evaluate()[0], problem.evaluate()[1]))

    _assert_rejected(problem, run())
