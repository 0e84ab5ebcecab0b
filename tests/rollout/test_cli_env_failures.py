"""A faulty environment through ``trpo-tf train``: exit status 2 and one line, soon.

The env (``faulty_cartpole.py``) is registered in the CLI process and its rollout
workers by a ``sitecustomize`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "experiments" / "cartpole.yaml"
HERE = Path(__file__).resolve().parent
TIMEOUT_S = 240
TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages")


def _train(tmp_path: Path, overrides: list[str]) -> tuple[int, list[str], float]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import faulty_cartpole  # noqa: F401\n")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), str(HERE)]),
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES="",
        WANDB_MODE="disabled",
    )
    sets = ["env.id=FaultyCartPole-v1", "trainer.total_steps=4096", *overrides]
    args = [sys.executable, "-m", "trpo_tf.cli", "train", str(CARTPOLE), "--quiet"]
    args += [arg for item in sets for arg in ("--set", item)]
    args += ["--run-dir", str(tmp_path / "run")]
    start = time.monotonic()
    result = subprocess.run(
        args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(TF_LOG_PREFIXES)
    ]
    return result.returncode, lines, time.monotonic() - start


def _error_line(returncode: int, lines: list[str]) -> str:
    assert returncode == 2, lines
    assert not any("Traceback" in line for line in lines), lines
    errors = [line for line in lines if line.startswith("trpo-tf: error: ")]
    assert len(errors) == 1, lines
    return errors[0]


@pytest.mark.slow
def test_reward_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    returncode, lines, _ = _train(tmp_path, ["env.kwargs={reward: '1.0'}"])
    assert lines == [
        "trpo-tf: error: environment 'FaultyCartPole-v1' (env index 0) returned a reward of "
        "type str ('1.0') from step() at env step 8; step() must return the reward as an int "
        "or float: fix the environment"
    ]
    assert returncode == 2


@pytest.mark.slow
def test_reward_beyond_float32_is_one_line_not_a_nan_run(tmp_path: Path) -> None:
    returncode, lines, _ = _train(tmp_path, ["env.kwargs={reward: 1.0e+39}"])
    line = _error_line(returncode, lines)
    assert "environment 'FaultyCartPole-v1' (env index 0) returned a reward of 1e+39" in line
    assert "beyond float32" in line
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_async_env_that_raises_every_episode_stops_within_seconds(tmp_path: Path) -> None:
    returncode, lines, elapsed = _train(
        tmp_path, ["runner.kind=async", "env.kwargs={raise_in_step_at: 5}"]
    )
    line = _error_line(returncode, lines)
    assert "environment 'FaultyCartPole-v1' failed 5 times" in line
    assert "SimulatorDiverged: pole angle exploded at episode step 5" in line
    # TensorFlow's import and the workers' start take most of it; the stall timeout is 600 s.
    assert elapsed < 120, elapsed
