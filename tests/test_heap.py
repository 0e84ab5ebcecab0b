"""frozen_heap: the collector skips pre-existing objects while training, and only then."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from trpo_tf.config import experiment_from_dict
from trpo_tf.heap import frozen_heap
from trpo_tf.train import train


def test_freezes_inside_and_hands_objects_back_after() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the interpreter's and the imported modules' objects
    assert gc.get_freeze_count() == 0


def test_hands_objects_back_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"), frozen_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0


def test_leaves_a_callers_freeze_alone() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        # Frozen objects that die meanwhile (another thread of the test process may
        # release some) leave the count; unfreezing would drop it to 0, freezing again
        # would add whatever was allocated since.
        with frozen_heap():
            assert 0.9 * before <= gc.get_freeze_count() <= before
        assert 0.9 * before <= gc.get_freeze_count() <= before  # not unfrozen by the block
    finally:
        gc.unfreeze()


class _FreezeRecorder:
    def __init__(self) -> None:
        self.counts: list[int] = []

    def log(self, row: Any, step: int) -> None:
        self.counts.append(gc.get_freeze_count())

    def finish(self, summary: Any, run_dir: Any) -> None:
        pass


def test_training_runs_with_the_heap_frozen(tmp_path) -> None:
    config = experiment_from_dict(
        {
            "env": {"id": "CartPole-v1", "n_envs": 2},
            "trainer": {"steps_per_iteration": 128, "total_steps": 256},
            "value": {"epochs": 1, "minibatch_size": 64},
            "eval": {"episodes": 1},
            "tracking": {"tensorboard": False},
        }
    )
    recorder = _FreezeRecorder()
    train(config, tmp_path / "run", quiet=True, trackers=[recorder])
    assert len(recorder.counts) == 2 and min(recorder.counts) > 1000
    assert gc.get_freeze_count() == 0
