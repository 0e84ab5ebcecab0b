"""``summary`` and ``plot`` find runs in sub-folders at any depth."""

from __future__ import annotations

import pytest

from trpo_tf.errors import RunDirError
from trpo_tf.tracking.compare import expand_runs


def _run(path):
    path.mkdir(parents=True)
    (path / "metrics.csv").write_text("iteration,env_steps\n1,10\n")
    (path / "export").mkdir()  # a run's own folders are not searched
    return path


def test_runs_below_a_folder_in_seed_order(tmp_path):
    runs = [
        _run(tmp_path / "cartpole-seeds" / "seed_10"),
        _run(tmp_path / "cartpole-seeds" / "seed_2"),
        _run(tmp_path / "pendulum-s0-20261201"),
        _run(tmp_path / "group" / "deeper" / "halfcheetah-s0"),
    ]
    _run(tmp_path / "pendulum-s0-20261201" / "best")  # inside a run: not another run
    found = expand_runs([tmp_path])
    assert found == [
        tmp_path / "cartpole-seeds" / "seed_2",
        tmp_path / "cartpole-seeds" / "seed_10",
        tmp_path / "group" / "deeper" / "halfcheetah-s0",
        tmp_path / "pendulum-s0-20261201",
    ]
    assert set(found) == set(runs)
    assert expand_runs([runs[2]]) == [runs[2]]  # a run itself


def test_a_folder_without_runs_is_one_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(RunDirError, match="holds no run"):
        expand_runs([tmp_path / "empty"])
    with pytest.raises(RunDirError, match="does not exist"):
        expand_runs([tmp_path / "missing"])
