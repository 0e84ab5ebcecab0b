"""SIGTERM / SIGHUP / SIGINT: finish the iteration, checkpoint it, exit 128 + signal.

The signal is sent from inside the run (a tracker's ``log``, called once per
iteration), so the tests are exact about where it lands; the handler is the one
a ``kill`` from outside reaches. ``test_cli_sigterm`` sends it from outside.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_configs import tiny_config

from trpo_tf.checkpoint import CheckpointManager
from trpo_tf.run.signals import GRACE_ENV, Stopped
from trpo_tf.run.training import TrainingRun
from trpo_tf.train import train

REPO = Path(__file__).resolve().parents[2]


class SignalAt:
    """A tracker that sends ``signals`` to this process when iteration ``at`` is logged."""

    def __init__(self, at: int, signals: list[int], sleep_s: float = 0.0) -> None:
        self.at, self.signals, self.sleep_s = at, signals, sleep_s
        self.logged: list[int] = []

    def log(self, row, step) -> None:
        self.logged.append(row["iteration"])
        if row["iteration"] == self.at:
            for signum in self.signals:
                os.kill(os.getpid(), signum)
            if self.sleep_s:
                time.sleep(self.sleep_s)

    def finish(self, summary, run_dir) -> None:
        raise AssertionError("a stopped run must not finish")


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_first_signal_checkpoints_the_iteration_and_stops(tmp_path: Path, signum, capsys) -> None:
    run_dir = tmp_path / "run"
    tracker = SignalAt(3, [signum])
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or what an earlier library set
    with pytest.raises(Stopped) as stopped:
        train(tiny_config(), run_dir, quiet=True, trackers=[tracker])
    assert stopped.value.exit_status == 128 + signum
    assert not stopped.value.abandoned
    assert tracker.logged == [1, 2, 3]
    assert [p.name for p in CheckpointManager(run_dir / "checkpoints", 3).all()] == ["iter_000003"]
    err = capsys.readouterr().err
    assert f"{signal.Signals(signum).name} received" in err
    assert f"continue with: trpo-tf train --resume {run_dir}" in err
    # The handlers are the previous ones again once train() returns.
    assert signal.getsignal(signal.SIGTERM) is before


def test_resume_after_sigterm_continues_to_the_end(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(Stopped):
        train(tiny_config(), run_dir, quiet=True, trackers=[SignalAt(2, [signal.SIGTERM])])
    result = train(tiny_config(), run_dir, quiet=True, resume=True, trackers=[])
    assert result.env_steps == 2048
    assert _iterations(run_dir) == list(range(1, 9))


def test_second_signal_stops_at_once_keeping_the_previous_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tiny_config(checkpoint={"every": 2})
    with pytest.raises(Stopped) as stopped:
        train(config, run_dir, quiet=True, trackers=[SignalAt(3, [signal.SIGTERM] * 2)])
    assert stopped.value.abandoned and stopped.value.exit_status == 143
    # Iteration 3 was abandoned: the periodic checkpoint of iteration 2 is the newest.
    assert CheckpointManager(run_dir / "checkpoints", 3).latest().name == "iter_000002"
    train(config, run_dir, quiet=True, resume=True, trackers=[])
    assert _iterations(run_dir) == list(range(1, 9))


def test_an_iteration_that_outlasts_the_grace_period_is_abandoned(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(GRACE_ENV, "0.3")
    run_dir = tmp_path / "run"
    config = tiny_config(checkpoint={"every": 1})
    started = time.perf_counter()
    with pytest.raises(Stopped) as stopped:
        # The tracker keeps iteration 3 busy for 30 s after the signal.
        train(config, run_dir, quiet=True, trackers=[SignalAt(3, [signal.SIGTERM], 30.0)])
    assert time.perf_counter() - started < 25
    assert stopped.value.abandoned and stopped.value.exit_status == 143
    assert CheckpointManager(run_dir / "checkpoints", 3).latest().name == "iter_000002"
    assert "stopped mid-iteration: the newest checkpoint" in capsys.readouterr().err


def test_an_error_after_the_stop_request_ends_the_run_as_stopped(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A signal to the whole process group can also end a process the iteration needs
    (a local Ray instance, a vector env's worker): the iteration fails after the stop
    request. That is the stop, abandoned mid-iteration, not a crash; the same error
    without a stop request is still raised as it is."""
    original = TrainingRun._collect_and_learn

    def collect_and_learn(self, iteration: int):
        if iteration == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("rollout process gone\nsecond line")
        return original(self, iteration)

    monkeypatch.setattr(TrainingRun, "_collect_and_learn", collect_and_learn)
    run_dir = tmp_path / "run"
    with pytest.raises(Stopped) as stopped:
        train(tiny_config(checkpoint={"every": 1}), run_dir, quiet=True, trackers=[])
    assert stopped.value.abandoned and stopped.value.exit_status == 143
    assert CheckpointManager(run_dir / "checkpoints", 3).latest().name == "iter_000002"
    err = capsys.readouterr().err
    assert (
        "stopped mid-iteration (the signal also ended a process the iteration needed: "
        "RuntimeError: rollout process gone): the newest checkpoint"
    ) in err

    def failing(self, iteration: int):
        raise RuntimeError("rollout process gone")

    monkeypatch.setattr(TrainingRun, "_collect_and_learn", failing)
    with pytest.raises(RuntimeError, match="rollout process gone"):
        train(tiny_config(), tmp_path / "other", quiet=True, trackers=[])


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")


def _write_experiment(path: Path, runner: str) -> Path:
    path.write_text(
        "name: stop\n"
        "env: {id: CartPole-v1, n_envs: 2}\n"
        "trainer: {total_steps: 2000000, steps_per_iteration: 512}\n"
        "value: {epochs: 1}\n"
        "eval: {every: 100000, episodes: 1}\n"
        "checkpoint: {every_s: 3600}\n"
        "tracking: {tensorboard: false}\n"
        f"runner: {{kind: {runner}, workers: 2}}\n"
    )
    return path


def _wait_for_rows(run_dir: Path, rows: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 180
    metrics = run_dir / "metrics.csv"
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended early: {process.stderr.read()[-2000:]}")
        if metrics.exists() and len(metrics.read_text().splitlines()) > rows:
            return
        time.sleep(0.2)
    pytest.fail("no progress within the time limit")


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["sync", "async"])
def test_cli_sigterm_from_outside(tmp_path: Path, runner: str) -> None:
    """``kill -TERM PID`` (sync) and a SIGTERM to the whole process group (async, as
    SLURM sends it): exit 143, a checkpoint of the last iteration, the resume command.

    Not for a local Ray instance: the group signal also ends its raylet, and Ray's core
    worker may then end the driver (exit 1) before training's handler runs."""
    env = _env()
    experiment = _write_experiment(tmp_path / "stop.yaml", runner)
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--run-dir", str(run_dir)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_rows(run_dir, 2, process)
        started = time.time()
        if runner != "sync":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 143, err[-2000:]
    assert time.time() - started < 30
    latest = CheckpointManager(run_dir / "checkpoints", 3).latest()
    assert latest is not None
    iteration = CheckpointManager.iteration_of(latest)
    assert iteration == _iterations(run_dir)[-1]
    assert f"checkpoint of iteration {iteration} saved" in err
    assert f"trpo-tf train --resume {run_dir}" in err
    assert "Traceback" not in err
