"""Checkpoints: exact resume, and a SIGKILL mid-write leaves the previous one usable."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trpo_tf.checkpoint import CheckpointManager
from trpo_tf.config import experiment_from_dict
from trpo_tf.config.schema import CheckpointConfig
from trpo_tf.run_loading import load_run
from trpo_tf.train import train

TIMING_COLUMNS = {"wall_time_s", "fps", "rollout_time_s", "update_time_s"}


def _config(env_id: str, total_steps: int, keep: int = 2, **trainer: object):
    return experiment_from_dict(
        {
            "env": {"id": env_id, "n_envs": 2, "normalize_obs": True, "normalize_reward": True},
            "trainer": {
                "steps_per_iteration": 256,
                "total_steps": total_steps,
                "jit_compile": False,
                **trainer,
            },
            "value": {"minibatch_size": 64, "epochs": 2},
            "eval": {"every": 2, "episodes": 2},
            "checkpoint": {"every": 1, "keep": keep},
            "tracking": {"tensorboard": False},
        }
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS}
            for row in csv.DictReader(handle)
        ]


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_n_plus_n_iterations_equal_2n(tmp_path: Path, env_id: str) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_config(env_id, 1024), straight, quiet=True)
    train(_config(env_id, 512), resumed, quiet=True)
    train(_config(env_id, 1024), resumed, quiet=True, resume=True)

    rows_straight, rows_resumed = _rows(straight / "metrics.csv"), _rows(resumed / "metrics.csv")
    assert [r["iteration"] for r in rows_resumed] == ["1", "2", "3", "4"]
    assert rows_straight == rows_resumed
    _, agent_a = load_run(straight)
    _, agent_b = load_run(resumed)
    for a, b in zip(agent_a.policy.policy_variables, agent_b.policy.policy_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(
        agent_a.value_network.trainable_variables,
        agent_b.value_network.trainable_variables,
        strict=True,
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        agent_a.observation_normalizer.stats.mean, agent_b.observation_normalizer.stats.mean
    )


@pytest.mark.slow
@pytest.mark.parametrize("max_kl_final", [None, 0.002], ids=["constant-kl", "kl-schedule"])
def test_checkpoint_written_behind_the_value_fit_resumes_exactly(
    tmp_path: Path, max_kl_final: float | None
) -> None:
    # Periodic checkpoints are written in the value-fit thread while the next
    # rollout runs; resuming from one must continue exactly like the straight run,
    # the trust region's schedule (recomputed from the iteration) included.
    config = _config("Pendulum-v1", 1024, keep=4, max_kl_final=max_kl_final)
    assert config.trainer.overlap_value_fit
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config, straight, quiet=True)
    shutil.copytree(straight, resumed)
    for name in ("iter_000003", "iter_000004"):
        shutil.rmtree(resumed / "checkpoints" / name)
    assert CheckpointManager(resumed / "checkpoints", 4).latest().name == "iter_000002"
    train(config, resumed, quiet=True, resume=True)
    assert _rows(straight / "metrics.csv") == _rows(resumed / "metrics.csv")
    deltas = [float(row["max_kl"]) for row in _rows(resumed / "metrics.csv")]
    if max_kl_final is None:
        assert deltas == [0.01] * 4
    else:
        assert deltas == pytest.approx([0.008, 0.006, 0.004, 0.002])
    _, agent_a = load_run(straight)
    _, agent_b = load_run(resumed)
    variables_a = agent_a.policy.policy_variables + agent_a.value_network.trainable_variables
    variables_b = agent_b.policy.policy_variables + agent_b.value_network.trainable_variables
    for a, b in zip(variables_a, variables_b, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.slow
def test_periodic_checkpoints_by_time(tmp_path: Path) -> None:
    # checkpoint.every_s alone: a run shorter than it writes only its final checkpoint;
    # one whose every iteration outlasts it writes one after each iteration.
    base = _config("CartPole-v1", 1024, keep=4)
    seconds = {"long": 3600.0, "short": 1e-9}
    for name, every_s in seconds.items():
        config = replace(base, checkpoint=CheckpointConfig(every=0, every_s=every_s, keep=4))
        train(config, tmp_path / name, quiet=True)

    def written(name: str) -> list[str]:
        return sorted(path.name for path in (tmp_path / name / "checkpoints").iterdir())

    assert written("long") == ["iter_000004"]
    assert written("short") == [f"iter_{i:06d}" for i in (1, 2, 3, 4)]


def test_checkpoint_manager_keeps_newest_and_ignores_partial(tmp_path: Path) -> None:
    import tensorflow as tf

    manager = CheckpointManager(tmp_path, keep=2)
    variable = tf.Variable([1.0, 2.0])
    for iteration in (1, 2, 3):
        variable.assign([float(iteration)] * 2)
        manager.save(iteration, {"v": variable}, {"iteration": iteration})
    assert [p.name for p in manager.all()] == ["iter_000002", "iter_000003"]
    (tmp_path / ".tmp-iter_000004").mkdir()  # a write that never finished
    assert manager.latest().name == "iter_000003"
    restored: dict = {}
    variable.assign([0.0, 0.0])
    CheckpointManager.load(manager.latest(), {"v": variable}, restored.update)
    assert restored == {"iteration": 3}
    np.testing.assert_array_equal(variable.numpy(), [3.0, 3.0])


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    experiment = Path(__file__).resolve().parents[1] / "experiments" / "cartpole.yaml"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    overrides = [
        "trainer.total_steps=4096",
        "trainer.steps_per_iteration=512",
        "env.n_envs=4",
        "trainer.jit_compile=false",
        "checkpoint.every=1",
        "tracking.tensorboard=false",
        "eval.every=100",
        "eval.episodes=1",
    ]
    command = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--quiet"]
    command += ["--run-dir", str(run_dir)] + [a for o in overrides for a in ("--set", o)]
    # The fault-injection hook stalls each checkpoint write between its TF and
    # Python halves; wait until one checkpoint is complete and the next is half
    # written, then kill the process.
    first = subprocess.Popen(
        command,
        env=dict(env, TRPO_TF_CHECKPOINT_WRITE_DELAY="6"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = run_dir / "checkpoints"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            done = (
                sorted(p.name for p in checkpoints.glob("iter_*")) if checkpoints.exists() else []
            )
            partial = list(checkpoints.glob(".tmp-*")) if checkpoints.exists() else []
            if done and partial:
                break
            time.sleep(0.1)
        else:
            pytest.fail("no checkpoint was being written within the time limit")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    manager = CheckpointManager(checkpoints, keep=3)
    latest = manager.latest()
    assert latest is not None and latest.name == done[-1]
    # The interrupted run continues from the intact checkpoint to the end.
    resumed = subprocess.run(
        [sys.executable, "-m", "trpo_tf.cli", "train", "--resume", str(run_dir), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    iterations = [int(r["iteration"]) for r in _rows(run_dir / "metrics.csv")]
    assert iterations == list(range(1, 9))
    assert (run_dir / "summary.json").exists()


def test_a_checkpoint_that_does_not_fit_the_run_is_a_one_line_error(tmp_path: Path) -> None:
    from trpo_tf.errors import RunDirError
    from trpo_tf.networks import build_mlp
    from trpo_tf.trainer.adam import FusedAdam

    network = build_mlp(3, [8], 1, name="value")
    manager = CheckpointManager(tmp_path / "checkpoints", keep=1)
    manager.save(1, {"value_network": network}, manager.snapshot({"loop": 1}))
    # This run also has an optimizer whose moments the checkpoint does not hold.
    optimizer = FusedAdam(1e-3)
    optimizer.build(network.trainable_variables)
    restored: list[dict] = []
    with pytest.raises(RunDirError, match="does not fit this run's model or optimizer") as error:
        CheckpointManager.load(
            manager.latest(),
            {"value_network": network, "value_optimizer": optimizer},
            restored.append,
        )
    assert "\n" not in str(error.value)
    assert restored == []


# ------------------------------------------------------------- what --resume may change

CARTPOLE = Path(__file__).resolve().parents[1] / "experiments" / "cartpole.yaml"


def _fake_checkpoint(checkpoint: Path, experiment: str) -> None:
    """A checkpoint whose manifest verifies (its TensorFlow files are placeholders)."""
    from trpo_tf.checkpoint import EXPERIMENT_FILE, _write_manifest

    for name in ("tf.index", "state.json", "arrays.npz"):
        (checkpoint / name).write_bytes(b"placeholder")
    (checkpoint / EXPERIMENT_FILE).write_text(experiment)
    _write_manifest(checkpoint, int(checkpoint.name[len("iter_") :]), "")


def _stopped_run(tmp_path: Path, iterations: int = 3) -> Path:
    """A run directory as a 6,144-step CartPole run leaves it, checkpoint contents aside."""
    from trpo_tf.config import dump_experiment, load_experiment

    run_dir = tmp_path / "run"
    checkpoint = run_dir / "checkpoints" / f"iter_{iterations:06d}"
    checkpoint.mkdir(parents=True)
    dump_experiment(
        load_experiment(CARTPOLE, ["trainer.total_steps=6144"]), run_dir / "config.yaml"
    )
    _fake_checkpoint(checkpoint, (run_dir / "config.yaml").read_text())
    rows = "".join(f"{i},{i * 2048}\n" for i in range(1, iterations + 1))
    (run_dir / "metrics.csv").write_text("iteration,env_steps\n" + rows)
    return run_dir


def _contents(run_dir: Path) -> dict[str, bytes | None]:
    """Every entry of the run directory but its lock file (which stays once made)."""
    return {
        str(p.relative_to(run_dir)): p.read_bytes() if p.is_file() else None
        for p in sorted(run_dir.rglob("*"))
        if p.name != ".trpo-tf.lock"
    }


def _error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("trpo-tf: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "key", "saved", "requested"),
    [
        (["--set", "env.n_envs=4", "--set", "trainer.total_steps=12288"], "env.n_envs", "8", "4"),
        (["--set", "policy.hidden=[32]"], "policy.hidden", "[64, 64]", "[32]"),
        (["--set", "env.id=Acrobot-v1"], "env.id", "'CartPole-v1'", "'Acrobot-v1'"),
        (["--seed", "7"], "seed", "0", "7"),
        (["--set", "trainer.max_kl=0.02"], "trainer.max_kl", "0.01", "0.02"),
    ],
)
def test_resume_that_changes_the_run_is_refused_before_anything_is_written(
    tmp_path: Path, capsys, args: list[str], key: str, saved: str, requested: str
) -> None:
    from trpo_tf.cli import main

    run_dir = _stopped_run(tmp_path)
    before = _contents(run_dir)
    assert main(["train", "--resume", str(run_dir), "--quiet", *args]) == 2
    line = _error_line(capsys)
    stored = run_dir / "checkpoints" / "iter_000003" / "experiment.yaml"
    assert f"cannot change {key} on --resume ({saved} in {stored}" in line
    assert f"requested {requested} by --set or an edited config.yaml)" in line
    assert "start a new run" in line
    assert _contents(run_dir) == before


def test_train_api_refuses_a_resume_with_another_model(tmp_path: Path) -> None:
    from trpo_tf.config import load_experiment
    from trpo_tf.errors import ConfigError

    run_dir = _stopped_run(tmp_path)
    before = _contents(run_dir)
    config = load_experiment(run_dir / "config.yaml", ["value.hidden=[32]"])
    with pytest.raises(ConfigError, match=r"cannot change value\.hidden on --resume"):
        train(config, run_dir, quiet=True, resume=True)
    assert _contents(run_dir) == before


def test_resume_may_change_budget_evaluation_tracking_and_speed_settings(tmp_path: Path) -> None:
    from trpo_tf.config import load_experiment
    from trpo_tf.resume import resume_checkpoint

    run_dir = _stopped_run(tmp_path)
    overrides = [
        "trainer.total_steps=12288",
        "trainer.threads=2",
        "trainer.jit_compile=true",
        "eval.every=1",
        "eval.episodes=2",
        "tracking.tensorboard=false",
        "tracking.wandb.enabled=true",
        "checkpoint.every=1",
        "checkpoint.keep=5",
        "runner.workers=4",
    ]
    config = load_experiment(run_dir / "config.yaml", overrides)
    assert resume_checkpoint(run_dir, config) == run_dir / "checkpoints" / "iter_000003"


def test_resume_with_a_budget_below_the_steps_already_trained_is_refused(
    tmp_path: Path, capsys
) -> None:
    from trpo_tf.cli import main

    run_dir = _stopped_run(tmp_path)  # a finished 6,144-step run: 3 iterations of 2,048
    before = _contents(run_dir)
    args = ["train", "--resume", str(run_dir), "--quiet", "--set", "trainer.total_steps=2048"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert "trainer.total_steps 2048 is below the 6144 env steps" in line
    assert "at least 6144" in line
    assert _contents(run_dir) == before


def test_resume_budget_may_shrink_to_the_steps_already_trained(tmp_path: Path) -> None:
    from trpo_tf.config import load_experiment
    from trpo_tf.resume import resume_checkpoint

    run_dir = _stopped_run(tmp_path, iterations=2)  # stopped after 2 of 3 iterations
    for total_steps in (4096, 5000):
        config = load_experiment(run_dir / "config.yaml", [f"trainer.total_steps={total_steps}"])
        assert resume_checkpoint(run_dir, config).name == "iter_000002"
