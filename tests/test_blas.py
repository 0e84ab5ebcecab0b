"""blas_threads: numpy's BLAS pool held to trainer.threads while training, restored after."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from trpo_tf.blas import blas_threads
from trpo_tf.config import experiment_from_dict
from trpo_tf.train import train


def _blas_threads() -> list[int]:
    np.ones(1) @ np.ones(1)  # numpy (and its BLAS) loaded
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert counts, "numpy without a BLAS library"
    return counts


@pytest.fixture
def two_blas_threads():
    with threadpool_limits(limits=2, user_api="blas"):  # a known starting point
        assert set(_blas_threads()) == {2}
        yield


def test_limits_inside_and_restores_after(two_blas_threads: None) -> None:
    with blas_threads(1):
        assert set(_blas_threads()) == {1}
    assert set(_blas_threads()) == {2}


def test_zero_leaves_the_libraries_alone(two_blas_threads: None) -> None:
    with blas_threads(0):
        assert set(_blas_threads()) == {2}


def test_restores_when_the_block_raises(two_blas_threads: None) -> None:
    with pytest.raises(RuntimeError), blas_threads(1):
        raise RuntimeError("boom")
    assert set(_blas_threads()) == {2}


class _BlasRecorder:
    def __init__(self) -> None:
        self.counts: list[set[int]] = []

    def log(self, row: Any, step: int) -> None:
        self.counts.append(set(_blas_threads()))

    def finish(self, summary: Any, run_dir: Any) -> None:
        pass


def test_training_runs_with_blas_held_to_trainer_threads(tmp_path, two_blas_threads) -> None:
    config = experiment_from_dict(
        {
            "env": {"id": "CartPole-v1", "n_envs": 2},
            "trainer": {"steps_per_iteration": 128, "total_steps": 256, "threads": 1},
            "value": {"epochs": 1, "minibatch_size": 64},
            "eval": {"episodes": 1},
            "tracking": {"tensorboard": False},
        }
    )
    recorder = _BlasRecorder()
    train(config, tmp_path / "run", quiet=True, trackers=[recorder])
    assert recorder.counts == [{1}, {1}]
    assert set(_blas_threads()) == {2}
