"""Run directories that survive: one writer, damaged checkpoints, no code from data,
the checkpoint as the truth on resume, and filesystem errors as one line."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_configs import tiny_config

from trpo_tf.atomic import OSERROR_ENV
from trpo_tf.checkpoint import CheckpointManager, verify
from trpo_tf.errors import ConfigError, RunDirError, RunInUseError, StorageError
from trpo_tf.run.lock import LOCK_FILE, RunLock, check_not_in_use, holder_of
from trpo_tf.train import train

REPO = Path(__file__).resolve().parents[2]


def _iterations(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [int(row["iteration"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A 4-iteration CartPole run with a checkpoint after every iteration (keep 4)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(tiny_config(1024, checkpoint={"every": 1, "keep": 4}), run_dir, quiet=True)
    return run_dir


@pytest.fixture
def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run, stopped after iteration 4 of 8 (budget raised on resume)."""
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _resume(run_dir: Path, **kwargs):
    return train(
        tiny_config(2048, checkpoint={"every": 1, "keep": 4}),
        run_dir,
        quiet=True,
        resume=True,
        trackers=[],
        **kwargs,
    )


# ---------------------------------------------------------------- one writer per run


def test_lock_names_the_holder_and_is_released(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with RunLock(run_dir, "trpo-tf train"):
        holder = holder_of(run_dir)
        assert holder["pid"] == os.getpid() and holder["command"] == "trpo-tf train"
        with pytest.raises(RunInUseError, match=rf"in use by PID {os.getpid()} on host"):
            RunLock(run_dir, "trpo-tf export").acquire()
        with pytest.raises(RunInUseError):
            train(tiny_config(), run_dir, quiet=True)
    assert holder_of(run_dir) is None
    check_not_in_use(run_dir)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    (run_dir / LOCK_FILE).write_text(
        json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "started": 0})
    )
    assert holder_of(run_dir) is None
    train(tiny_config(512), run_dir, quiet=True)
    assert _iterations(run_dir) == [1, 2]


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "trpo_tf.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("trpo-tf:")]


@pytest.mark.slow
def test_two_processes_one_run_directory(tmp_path: Path) -> None:
    """A second train, --resume or export into a live run directory is refused."""
    experiment = tmp_path / "long.yaml"
    experiment.write_text(
        "name: long\nenv: {id: CartPole-v1, n_envs: 2}\n"
        "trainer: {total_steps: 3000000, steps_per_iteration: 512}\n"
        "value: {epochs: 1}\neval: {every: 100000, episodes: 1}\n"
        "checkpoint: {every: 1}\ntracking: {tensorboard: false}\n"
    )
    run_dir = tmp_path / "run"
    first = _cli("train", str(experiment), "--run-dir", str(run_dir), "--quiet")
    try:
        deadline = time.time() + 120
        while not list((run_dir / "checkpoints").glob("iter_*")):
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.2)
        seconds = [
            _cli("train", str(experiment), "--set", "seed=7", "--run-dir", str(run_dir)),
            _cli("train", "--resume", str(run_dir)),
            _cli("export", str(run_dir)),
        ]
        for second in seconds:
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            lines = _error_lines(err)
            assert len(lines) == 1, err
            assert f"is in use by PID {first.pid} on host" in lines[0]
            assert "Traceback" not in err
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 143
    # The first run's files are its own: one config, whole rows, seed 0.
    assert "seed: 0\n" in (run_dir / "config.yaml").read_text()
    assert _iterations(run_dir) == list(range(1, len(_iterations(run_dir)) + 1))


# ---------------------------------------------------------- damaged or foreign checkpoints


def _damage(checkpoint: Path, how: str) -> None:
    if how == "truncated data":
        data = next(checkpoint.glob("tf.data-*"))
        data.write_bytes(data.read_bytes()[:100])
    elif how == "empty index":
        (checkpoint / "tf.index").write_bytes(b"")
    elif how == "garbage state":
        (checkpoint / "state.json").write_text("{not json")
    elif how == "no manifest":
        (checkpoint / "manifest.json").unlink()
    elif how == "foreign":
        manifest = json.loads((checkpoint / "manifest.json").read_text())
        manifest["run_id"] = "another-run"
        (checkpoint / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damages",
    [
        {
            "iter_000004": "truncated data",
            "iter_000003": "empty index",
            "iter_000002": "garbage state",
        },
        {"iter_000004": "no manifest", "iter_000003": "foreign"},
    ],
    ids=["damaged", "incomplete-or-foreign"],
)
def test_resume_falls_back_to_the_newest_intact_checkpoint(run_copy: Path, damages, capsys):
    checkpoints = run_copy / "checkpoints"
    run_id = json.loads((run_copy / "run.json").read_text())["run_id"]
    for name, how in damages.items():
        _damage(checkpoints / name, how)
        assert verify(checkpoints / name, run_id) is not None, how
    (checkpoints / "iter_zzz").mkdir()
    _resume(run_copy)
    err = capsys.readouterr().err
    for name in damages:
        assert f"resume: skipped checkpoint {name}:" in err
    assert "resume: skipped checkpoint iter_zzz: not a checkpoint name" in err
    if "foreign" in damages.values():
        assert "belongs to another run" in err
    assert _iterations(run_copy) == list(range(1, 9))


def test_no_intact_checkpoint_is_one_line(run_copy: Path) -> None:
    for checkpoint in CheckpointManager(run_copy / "checkpoints", 4).all():
        _damage(checkpoint, "garbage state")
    with pytest.raises(RunDirError, match="has no intact checkpoint") as error:
        _resume(run_copy)
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ no code from data


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EXPLOIT_MARK']}",))


def test_a_run_directory_never_runs_code(run_copy: Path, tmp_path: Path, monkeypatch, capsys):
    mark = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARK", str(mark))
    checkpoint = run_copy / "checkpoints" / "iter_000004"
    assert not list(checkpoint.glob("*.pkl"))
    # A crafted pickle where the env state goes, with the checksums made to match:
    # the tag is not this user's, so it is never unpickled.
    import numpy as np

    from trpo_tf.checkpoint import _write_manifest

    with np.load(checkpoint / "arrays.npz") as archive:
        arrays = dict(archive)
    state = json.loads((checkpoint / "state.json").read_text())
    name = state["sampler"]["envs"]["__pickled__"]
    arrays[name] = np.frombuffer(pickle.dumps(_Exploit()), np.uint8)
    state["sampler"]["envs"]["tag"] = "0" * 64
    np.savez(checkpoint / "arrays.npz", **arrays)
    (checkpoint / "state.json").write_text(json.dumps(state))
    (checkpoint / "manifest.json").unlink()
    _write_manifest(checkpoint, 4, json.loads((run_copy / "run.json").read_text())["run_id"])

    _resume(run_copy)
    assert not mark.exists()
    err = capsys.readouterr().err
    assert "sampler.envs was not restored: it is pickled data not signed" in err
    assert "episodes restart from reset" in err


def test_an_old_pickled_checkpoint_is_skipped(run_copy: Path, capsys) -> None:
    checkpoint = run_copy / "checkpoints" / "iter_000004"
    (checkpoint / "manifest.json").unlink()
    (checkpoint / "state.pkl").write_bytes(pickle.dumps({"loop": 1}))
    _resume(run_copy)
    assert "never loaded (it could run code)" in capsys.readouterr().err


def test_this_users_env_state_resumes_exactly(run_copy: Path, capsys) -> None:
    _resume(run_copy)
    assert "not restored" not in capsys.readouterr().err


# ----------------------------------------------------- the checkpoint is the truth on resume


@pytest.mark.parametrize(
    ("edit", "key", "saved", "requested"),
    [
        (("max_kl: 0.01", "max_kl: 0.3"), "trainer.max_kl", "0.01", "0.3"),
        (("hidden: [64, 64]", "hidden: [32]"), "policy.hidden", "[64, 64]", "[32]"),
    ],
)
def test_an_edited_config_yaml_is_reported_like_a_set(run_copy: Path, edit, key, saved, requested):
    from trpo_tf.config import load_experiment

    config_file = run_copy / "config.yaml"
    config_file.write_text(config_file.read_text().replace(*edit, 1))
    config = load_experiment(config_file)
    with pytest.raises(ConfigError) as error:
        train(config, run_copy, quiet=True, resume=True, trackers=[])
    message = str(error.value)
    assert f"cannot change {key} on --resume ({saved} in " in message
    assert "iter_000004/experiment.yaml" in message
    assert f"requested {requested} by --set or an edited config.yaml" in message


# ------------------------------------------------------------- filesystem errors, one line


@pytest.mark.parametrize(
    ("target", "code", "words"),
    [
        ("iter_000002", "ENOSPC", "No space left on device"),
        ("metrics.csv", "EROFS", "Read-only file system"),
        ("summary.json", "EDQUOT", "Disk quota exceeded"),
        ("export", "EACCES", "Permission denied"),
    ],
)
def test_a_failed_write_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch, target: str, code: str, words: str
) -> None:
    monkeypatch.setenv(OSERROR_ENV, f"{target}:{code}")
    run_dir = tmp_path / "run"
    with pytest.raises(StorageError) as error:
        train(tiny_config(1024, checkpoint={"every": 1}), run_dir, quiet=True, trackers=[])
    message = str(error.value)
    assert "\n" not in message and words in message and target in message
    assert error.value.exit_status == 74
    monkeypatch.delenv(OSERROR_ENV)
    if target == "iter_000002":
        assert CheckpointManager(run_dir / "checkpoints", 3).latest().name == "iter_000001"
        assert verify(CheckpointManager(run_dir / "checkpoints", 3).latest()) is None


def test_storage_error_through_the_cli_exits_74(tmp_path: Path) -> None:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    env[OSERROR_ENV] = "config.yaml:ENOSPC"
    experiment = REPO / "experiments" / "cartpole.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trpo_tf.cli",
            "train",
            str(experiment),
            "--quiet",
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            "trainer.total_steps=2048",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 74, done.stderr
    lines = _error_lines(done.stderr)
    assert lines == [
        f"trpo-tf: error: cannot write {tmp_path / 'run' / 'config.yaml'} (config): No space "
        "left on device; free space on that filesystem"
    ]


# ------------------------------------------------------------ a kill at each write


KILL_TARGETS = ("metrics.csv", "config.yaml", "iter_000005", "policy", "export", "summary.json")


def _snapshot_of(run_dir: Path, target: str) -> dict[str, bytes]:
    """The bytes of ``target`` (a file, or every file under a directory) in ``run_dir``."""
    path = run_dir / target
    if path.is_file():
        return {target: path.read_bytes()}
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_sigkill_at_each_write_leaves_the_old_file_whole(finished_run: Path, tmp_path: Path):
    """Resume a finished 4-iteration run to 8 iterations, SIGKILLed just before the
    rename of each file or directory it replaces: the old version is intact, and the
    next resume completes the run."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    runs, processes = {}, {}
    for target in KILL_TARGETS:
        run_dir = tmp_path / target
        shutil.copytree(finished_run, run_dir)
        runs[target] = (run_dir, _snapshot_of(run_dir, target))
        processes[target] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trpo_tf.cli",
                "train",
                "--resume",
                str(run_dir),
                "--quiet",
                "--set",
                "trainer.total_steps=2048",
                "--set",
                "checkpoint.every=1",
            ],
            cwd=REPO,
            env=dict(env, TRPO_TF_FAULT_KILL=target),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    for target, process in processes.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == -9, (target, err[-2000:])
    for target, (run_dir, before) in runs.items():
        if target == "iter_000005":  # a new checkpoint: none of it may be visible
            assert not (run_dir / "checkpoints" / target).exists()
            assert verify(run_dir / "checkpoints" / "iter_000004") is None
        elif target in ("metrics.csv", "config.yaml"):  # rewritten at the start
            assert _snapshot_of(run_dir, target) == before, target
        else:  # replaced at the end, after training: the old version is still whole
            assert _snapshot_of(run_dir, target) == before, target
        _resume(run_dir)
        assert _iterations(run_dir) == list(range(1, 9)), target
        assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 2048
