"""Hostile and out-of-range input through ``trpo-tf train``: one error line, exit 2, no run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = str(REPO / "experiments" / "cartpole.yaml")

LAUGHS = """\
name: laughs
env:
  kwargs:
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]
"""


def train_error(tmp_path: Path, *args: str, timeout: float = 120) -> str:
    """Runs ``trpo-tf train ... --run-dir RUN --quiet``; returns its one error line."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "trpo_tf.cli", "train", *args, "--run-dir", str(run_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("trpo-tf:")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("trpo-tf: error: ")
    assert len(errors[0]) < 600, errors[0]
    assert not run_dir.exists()
    return errors[0].removeprefix("trpo-tf: error: ")


def test_billion_laughs_and_duplicate_keys(tmp_path):
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text(LAUGHS)
    assert train_error(tmp_path, str(laughs)) == (
        f"{laughs}: line 4: YAML anchors are not supported (found '&a'); neither are aliases; "
        "remove the anchor and write each value out in full"
    )
    twice = tmp_path / "twice.yaml"
    twice.write_text("trainer:\n  max_kl: 0.01\n  max_kl: 5.0\n")
    assert "key 'trainer.max_kl' is given twice, at lines 2 and 3" in train_error(
        tmp_path, str(twice)
    )
    alias = train_error(tmp_path, CARTPOLE, "--set", "env.kwargs={a: &x [1], b: [*x, *x]}")
    assert alias.startswith(
        "env.kwargs: the value of override 'env.kwargs={a: &x [1], b: [*x, *x]}'"
    )


@pytest.mark.parametrize(
    "args, start",
    [
        (["--seed", "4294967296"], "seed must be >= 0 and <= 4294967295, got 4294967296"),
        (["--set", "trainer.total_steps=1e400"], "trainer.total_steps must be >= 1 and <= "),
        (["--set", "policy.hidden=[100000000000]"], "policy.hidden[0] must be >= 1 and <= 16384"),
        (["--set", "env.n_envs=1e12"], "env.n_envs must be >= 1 and <= 1024"),
        (["--set", "env.kwargs.render_mode=human"], "env.kwargs.render_mode must be 'rgb_array'"),
        (["--set", "name=../../x"], "name must be a single path component"),
        (["--seeds", "0-100000"], "--seeds: '0-100000' names more than 1000 seeds"),
    ],
)
def test_out_of_range_values(tmp_path, args, start):
    assert train_error(tmp_path, CARTPOLE, *args, timeout=60).startswith(start)


def test_env_construction_error(tmp_path):
    message = train_error(tmp_path, CARTPOLE, "--set", "env.kwargs.max_episode_steps=-3")
    assert message.startswith(
        "env.kwargs: environment 'CartPole-v1' could not be made with {'max_episode_steps': -3}"
    )
