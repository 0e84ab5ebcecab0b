"""summary.json's fields from a finished run's numbers (run/summary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trpo_tf.run.summary import TrainResult, summary_of
from trpo_tf.tracking.run_dir import SUMMARY_KEYS


def test_summary_holds_the_contract_keys_and_splits_the_wall_time() -> None:
    result = TrainResult(Path("run"), 4096, 10.0, 200.5, 3.25, 10)
    summary = summary_of(
        result,
        iterations=2,
        update_retraces=0,
        update_devices=["CPU:0"],
        eval_time_s=1.5,
        train_time_s=8.0,
        trained_steps=4000,
        dropped_steps=96,
        worker_restarts=1,
        runner_start_s=0.25,
        best={"best_eval_return": 210.0},
    )
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["steps_per_s"] == pytest.approx(409.6)
    assert summary["finalize_time_s"] == pytest.approx(2.0)
    # env steps per second of training alone: evaluations are not training
    assert summary["train_steps_per_s"] == pytest.approx(4096 / 6.5, abs=0.05)
    assert summary["export_skipped"] is None
    assert summary["trained_steps"] + summary["dropped_steps"] == summary["env_steps"]
    assert summary["best_eval_return"] == 210.0


def test_a_skipped_export_is_named_and_a_zero_wall_time_gives_zero_speed() -> None:
    result = TrainResult(Path("run"), 0, 0.0, 0.0, 0.0, 0, export_skipped="Discrete(3) x Box")
    summary = summary_of(
        result,
        iterations=0,
        update_retraces=0,
        update_devices=[],
        eval_time_s=0.0,
        train_time_s=0.0,
        trained_steps=0,
        dropped_steps=0,
        worker_restarts=0,
        runner_start_s=0.0,
        best={},
    )
    assert summary["export_skipped"] == "Discrete(3) x Box"
    assert summary["steps_per_s"] == 0.0
