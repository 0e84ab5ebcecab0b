"""SIGTERM / SIGHUP / SIGINT: finish the iteration, checkpoint it, exit 128 + signal.

The signal is sent from inside the run (a tracker's ``log``, called once per
iteration), so the tests are exact about where it lands; the handler is the one
a ``kill`` from outside reaches. ``test_cli_sigterm`` sends it from outside.
"""

from __future__ import annotations

import csv
import json
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


def _ray_env(home: Path) -> dict[str, str]:
    """No ambient Ray settings; Ray's files (~/.ray) under ``home``."""
    env = _env()
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(name, None)
    env.update(HOME=str(home), RAY_AUTH_MODE="disabled")
    return env


CHILD_SESSIONS = """
import json, os
from pathlib import Path
from trpo_tf.rollout.ray_connect import init_ray
init_ray("local", 1)
me = os.getpid()
children = []
for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if int(fields[1]) == me:  # ppid
        pid = int(stat.parent.name)
        children.append([pid, os.getsid(pid), os.getpgid(pid)])
print(json.dumps({"sid": os.getsid(0), "pgid": os.getpgid(0), "children": children}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_a_local_ray_instance_runs_outside_the_learners_process_group(tmp_path: Path) -> None:
    """A group SIGTERM must reach the learner only: Ray's GCS and raylet (the learner's
    children) run in sessions of their own, so they outlive the signal until the
    learner has checkpointed and shut Ray down."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'trpo_tf[ray]')")
    done = subprocess.run(
        [sys.executable, "-c", CHILD_SESSIONS],
        cwd=REPO,
        env=_ray_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(seen["children"]) >= 2, seen  # at least the GCS server and the raylet
    for pid, sid, pgid in seen["children"]:
        assert sid != seen["sid"] and pgid != seen["pgid"], (pid, seen)


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
@pytest.mark.parametrize("runner", ["sync", "async", "ray"])
def test_cli_sigterm_from_outside(tmp_path: Path, runner: str) -> None:
    """``kill -TERM PID`` (sync) and a SIGTERM to the whole process group (async and a
    local Ray instance, as SLURM sends it): exit 143, a checkpoint of the last
    iteration, the resume command."""
    env = _env()
    if runner == "ray":
        pytest.importorskip("ray", reason="ray is not installed (pip install 'trpo_tf[ray]')")
        env = _ray_env(tmp_path)
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
