"""What ``train --seeds`` says when a seed's run ends, and resuming its runs."""

from __future__ import annotations

import pytest

from trpo_tf.errors import RunDirError
from trpo_tf.resume import check_run_to_resume
from trpo_tf.tracking.seeds import INTERRUPTED, _outcome


def test_outcome_of_each_seed(tmp_path):
    run = tmp_path / "seed_0"
    assert _outcome(0, run) == "done"
    assert _outcome(1, run) == "FAILED (exit 1)"
    assert _outcome(INTERRUPTED, run) == "interrupted before its first checkpoint"
    (run / "checkpoints" / "iter_000010").mkdir(parents=True)
    interrupted = _outcome(INTERRUPTED, run)
    assert interrupted == f"interrupted; continue it with: trpo-tf train --resume {run}"
    assert _outcome(-2, run) == interrupted  # killed by SIGINT before it could exit


def test_resume_names_the_seed_runs_of_a_parent(tmp_path):
    for seed in (10, 2, 0):
        (tmp_path / f"seed_{seed}").mkdir()
        (tmp_path / f"seed_{seed}" / "config.yaml").write_text("name: x\n")
    with pytest.raises(RunDirError, match="several seeds") as error:
        check_run_to_resume(tmp_path)
    assert "(seed_0, seed_2, seed_10)" in str(error.value)
    assert f"--resume {tmp_path / 'seed_0'}" in str(error.value)
    with pytest.raises(RunDirError, match="not a run directory"):
        check_run_to_resume(tmp_path / "seed_0" / "missing")
    check_run_to_resume(tmp_path / "seed_2")  # a run: no error
