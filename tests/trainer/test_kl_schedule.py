"""The trust region's schedule: δ(p) = δ₀ + (δ₁ − δ₀)·p over the run, in the learner."""

from __future__ import annotations

import pytest

from trpo_tf.trainer.kl_schedule import scheduled_max_kl, training_progress


def test_progress_is_the_env_steps_of_the_iterations_so_far_over_the_budget() -> None:
    assert training_progress(1, 2048, 8192) == pytest.approx(0.25)
    assert training_progress(4, 2048, 8192) == 1.0
    # whole iterations may pass the budget by less than one batch: clipped to 1
    assert training_progress(5, 2048, 9000) == 1.0
    assert training_progress(0, 2048, 8192) == 0.0


def test_delta_moves_linearly_from_max_kl_to_max_kl_final() -> None:
    assert scheduled_max_kl(0.01, 0.001, 0.0) == pytest.approx(0.01)
    assert scheduled_max_kl(0.01, 0.001, 0.5) == pytest.approx(0.0055)
    assert scheduled_max_kl(0.01, 0.001, 1.0) == pytest.approx(0.001)
    assert scheduled_max_kl(0.01, 0.001, 3.0) == pytest.approx(0.001)


def test_no_final_value_keeps_the_trust_region_constant() -> None:
    assert [scheduled_max_kl(0.02, None, p) for p in (0.0, 0.4, 1.0)] == [0.02, 0.02, 0.02]
