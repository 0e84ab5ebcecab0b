"""What ``train --seeds`` says when a seed's run ends, and resuming its runs."""

from __future__ import annotations

import time

import pytest

from trpo_tf.errors import ConfigError, RunDirError
from trpo_tf.resume import check_run_to_resume
from trpo_tf.tracking.seeds import INTERRUPTED, MAX_SEEDS, _outcome, parse_seeds


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


def test_many_seeds_are_refused_before_they_are_expanded():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"names more than {MAX_SEEDS} seeds"):
        parse_seeds("0-100000")  # spent minutes in a quadratic duplicate check
    with pytest.raises(ConfigError, match=f"names more than {MAX_SEEDS} seeds"):
        parse_seeds("0-4000000000")
    with pytest.raises(ConfigError, match=f"names more than {MAX_SEEDS} seeds"):
        parse_seeds(",".join(str(seed) for seed in range(MAX_SEEDS + 1)))
    assert time.perf_counter() - start < 1.0


def test_seed_lists_are_checked_in_linear_time():
    start = time.perf_counter()
    assert parse_seeds(f"0-{MAX_SEEDS - 1}") == list(range(MAX_SEEDS))
    with pytest.raises(ConfigError, match="names seed 998 more than once"):
        parse_seeds("0-997,998,998")
    assert time.perf_counter() - start < 1.0


def test_seeds_stay_within_the_seed_key_range():
    assert parse_seeds("4294967295") == [2**32 - 1]
    with pytest.raises(ConfigError, match=r"seeds must be >= 0 and <= 4294967295.*'4294967296'"):
        parse_seeds("4294967296")
    with pytest.raises(ConfigError, match="is not a seed"):
        parse_seeds("9" * 5000)  # past Python's int conversion limit


def test_parallel_seeds_share_one_progress_line(tmp_path):
    """--parallel: the seeds' own progress lines (in their logs) summed into one line."""
    import io

    from trpo_tf.tracking.seeds import SeedsProgress, logged_steps

    log = tmp_path / "seed_0.log"
    assert logged_steps(log) == 0  # not started yet
    log.write_text(
        "it    1 | steps     2,048/10,240 ( 20.0%) |   1,000 fps | ETA 00:08\n"
        "it    2 | steps     4,096/10,240 ( 40.0%) |   1,000 fps | ETA 00:06\n"
    )
    assert logged_steps(log) == 4096
    now = [0.0]
    stream = io.StringIO()
    progress = SeedsProgress(3, 10_240, stream=stream, every_s=10.0, clock=lambda: now[0])
    now[0] = 5.0
    progress.update({1: 4096, 2: 2048}, done=0, running=2)
    assert stream.getvalue() == ""  # not every poll: every 10 s
    now[0] = 10.0
    progress.update({1: 4096, 2: 2048}, done=1, running=2)
    assert stream.getvalue() == (
        "seeds 1 done, 2 running, 0 waiting | steps 16,384/30,720 ( 53.3%) | 1,638 fps "
        "| ETA 00:09\n"
    )
