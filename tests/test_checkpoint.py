"""CheckpointManager: consecutive writes of the same objects hold their own values;
CheckpointSchedule: when training writes a periodic one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from trpo_tf.checkpoint import CheckpointManager, CheckpointSchedule
from trpo_tf.config.schema import CheckpointConfig


def test_each_write_holds_the_values_at_its_time(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=5)
    weights = tf.Variable([1.0, 2.0])
    generator = tf.random.Generator.from_seed(3)
    for iteration in (1, 2, 3):
        weights.assign([10.0 * iteration, -1.0 * iteration])
        generator.uniform([4])  # the generator's state moves between writes too
        manager.save(iteration, {"weights": weights, "generator": generator}, {"it": iteration})
    assert [path.name for path in manager.all()] == ["iter_000001", "iter_000002", "iter_000003"]
    for iteration, path in zip((1, 2, 3), manager.all(), strict=True):
        restored = tf.Variable([0.0, 0.0])
        restored_generator = tf.random.Generator.from_seed(0)
        seen: list[dict] = []
        CheckpointManager.load(
            path, {"weights": restored, "generator": restored_generator}, seen.append
        )
        np.testing.assert_array_equal(restored.numpy(), [10.0 * iteration, -1.0 * iteration])
        replay = tf.random.Generator.from_seed(3)
        for _ in range(iteration):
            replay.uniform([4])
        np.testing.assert_array_equal(restored_generator.uniform([4]), replay.uniform([4]))
        assert seen == [{"it": iteration}]


def test_other_objects_get_their_own_checkpoint(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep=5)
    first, second = tf.Variable([1.0]), tf.Variable([2.0, 3.0])
    manager.save(1, {"weights": first}, {})
    manager.save(2, {"weights": second}, {})
    restored = tf.Variable([0.0, 0.0])
    CheckpointManager.load(manager.path_of(2), {"weights": restored}, lambda state: None)
    np.testing.assert_array_equal(restored.numpy(), [2.0, 3.0])


def _schedule(every: int, every_s: float, elapsed: float = 0.0) -> CheckpointSchedule:
    return CheckpointSchedule(CheckpointConfig(every=every, every_s=every_s), elapsed)


def test_schedule_by_iterations_ignores_time() -> None:
    schedule = _schedule(every=3, every_s=0.0)
    due = [it for it in range(1, 10) if schedule.due(it, elapsed=1000.0 * it)]
    assert due == [3, 6, 9]


def test_schedule_by_time_counts_from_the_previous_checkpoint() -> None:
    schedule = _schedule(every=0, every_s=60.0)
    written = []
    for iteration, elapsed in enumerate([25.0, 50.0, 75.0, 100.0, 125.0, 150.0], start=1):
        if schedule.due(iteration, elapsed):
            schedule.written(elapsed)
            written.append(iteration)
    assert written == [3, 6]  # at 75 s (≥ 60 after 0), then at 150 s (≥ 60 after 75)


def test_schedule_resumed_run_counts_from_where_it_resumed() -> None:
    schedule = _schedule(every=0, every_s=60.0, elapsed=500.0)
    assert not schedule.due(11, elapsed=550.0)
    assert schedule.due(12, elapsed=560.0)


def test_schedule_either_trigger_and_both_off() -> None:
    both = _schedule(every=10, every_s=60.0)
    assert both.due(10, elapsed=1.0)  # by iterations
    assert both.due(7, elapsed=61.0)  # by time
    assert not both.due(7, elapsed=59.0)
    off = _schedule(every=0, every_s=0.0)
    assert not any(off.due(it, elapsed=1e6) for it in range(1, 50))


def test_default_schedule_is_by_time_only() -> None:
    config = CheckpointConfig()
    assert (config.every, config.every_s) == (0, 60.0)
