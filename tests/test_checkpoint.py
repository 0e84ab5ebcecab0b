"""CheckpointManager: consecutive writes of the same objects hold their own values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from trpo_tf.checkpoint import CheckpointManager


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
