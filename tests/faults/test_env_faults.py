"""A faulty environment through training: a finished run or one error line, nothing else.

Each case trains ``FaultInjection-v1`` (``fault_env.py``) through the CLI's code
path, in this process, for two iterations of 128 steps. A value that is not finite
in float32 (NaN, ±inf, 1e39) ends in a finished run where ``env.clip_nonfinite:
true`` is set and in exit status 2 with one ``trpo-tf: error:`` line otherwise;
every other fault (a reward or observation of the wrong type or shape, an env that
raises in ``reset()``/``step()``) is exit status 2 with one line, clipping or not.
Faults are injected in training, in evaluation alone (``where: evaluation``), and
in the asynchronous runner's worker processes. A slow env finishes, within its
deadline.

Cases marked xfail are gaps: the library ends them in a traceback, or finishes
where it should refuse. ``strict=True``: a fix turns them into failures here, to
be moved to the passing cases.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_env import ENV_ID, RegisteringEnvFactory, sitecustomize_dir
from fault_harness import (
    finite_metrics,
    same_learning,
    stderr_lines,
    stray_lines,
    the_error_line,
    train_in_process,
    write_experiment,
)

import trpo_tf.rollout.segment

BASE = {
    "name": "faults",
    "seed": 0,
    "env": {"id": ENV_ID, "n_envs": 2},
    "policy": {"hidden": [8]},
    "value": {"hidden": [8], "epochs": 1},
    "trainer": {"total_steps": 256, "steps_per_iteration": 128},
    "eval": {"every": 100, "episodes": 1, "keep_best": False},
    "checkpoint": {"every": 0, "every_s": 3600},
    "tracking": {"tensorboard": False},
}
"""Two iterations of 128 steps over two envs (env step 200 falls in the second)."""

CLIP = "env.clip_nonfinite=true"
EVAL = "trainer.total_steps=128"  # one iteration: enough to reach evaluation
ASYNC = "runner.kind=async"  # two workers, one env each
TRACEBACK = "ends in a traceback instead of one error line"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    kwargs: str  # env.kwargs as a --set value (YAML flow), so .nan and 1.0e+39 go through YAML
    sets: tuple[str, ...] = ()
    finishes: bool | None = False  # False: refused with one line; None: either
    says: tuple[str, ...] = ()  # fragments of the error line
    gap: str | None = None  # xfail reason
    noise: str | None = None  # stderr lines besides the error line, known (reported, tolerated)
    names_env: bool = True  # the error line names the env (not so for the learner's own)

    def param(self) -> object:
        marks = [pytest.mark.xfail(strict=True, reason=self.gap)] if self.gap else []
        return pytest.param(self, id=self.id, marks=marks)


CASES = [
    # ---- values not finite in float32, clipping off: one line naming value and step
    Case("reward_nan", "{reward: .nan}", says=("non-finite reward (nan) at env step 2",)),
    Case("reward_inf", "{reward: .inf}", says=("non-finite reward (inf)",)),
    Case(
        "reward_neg_inf_in_second_iteration",
        "{reward: -.inf, fault_from: 100}",
        says=("non-finite reward (-inf) at env step 200",),
    ),
    Case("reward_1e39", "{reward: 1.0e+39}", says=("reward of 1e+39", "beyond float32")),
    Case(
        "reward_3e38_overflows_the_advantages",  # finite in float32; its sums are not
        "{reward: 3.0e+38}",
        says=("advantages became non-finite",),
        names_env=False,
        noise="numpy's 'RuntimeWarning: overflow encountered in cast' from advantages/gae.py "
        "(two lines) precedes the error line",
    ),
    Case(
        "observation_nan_at_first_reset",
        "{observation: .nan, fault_from: 0}",
        says=("non-finite observation (nan) at env step 0",),
    ),
    Case(
        "observation_inf_normalized_in_second_iteration",
        "{observation: .inf, fault_from: 100}",
        sets=("env.normalize_obs=true", "env.normalize_reward=true"),
        says=("non-finite observation (inf) at env step 200",),
    ),
    Case("observation_neg_1e39", "{observation: -1.0e+39}", says=("observation of -1e+39",)),
    # ---- clippable values with env.clip_nonfinite: the run finishes
    Case(
        # where: anywhere, so evaluation's values are clipped too
        "clip_nan_observation_1e39_reward_from_reset_normalized",
        "{observation: .nan, reward: 1.0e+39, fault_from: 0}",
        sets=(CLIP, "env.normalize_obs=true", "env.normalize_reward=true"),
        finishes=True,
    ),
    Case(
        "clip_neg_1e39_observation_neg_inf_reward_in_second_iteration",
        "{observation: -1.0e+39, reward: -.inf, fault_from: 100}",
        sets=(CLIP,),
        finishes=True,
    ),
    # ---- rewards of the wrong type: one line, clipping or not
    Case("reward_numeric_str", "{reward: '1.0'}", says=("reward of type str ('1.0')",)),
    Case("reward_str_with_clip", "{reward: abc}", sets=(CLIP,), says=("reward of type str",)),
    Case("reward_list", "{reward: [1.0]}", says=("reward of type list",)),
    Case("reward_none", "{reward_as: none}", says=("reward of type NoneType",)),
    Case("reward_shape_1_array", "{reward_as: array}", says=("reward of type ndarray",)),
    Case("reward_complex", "{reward_as: complex}", says=("reward of type complex",)),
    Case("reward_bytes", "{reward_as: bytes}", says=("reward of type bytes",)),
    Case("reward_numpy_str", "{reward_as: numpy_str}", says=("reward of type str_",)),
    # ---- observations of the wrong type or shape
    Case("observation_str", "{observation_as: str}", says=("observations of dtype",)),
    Case("observation_none", "{observation_as: none}", says=("observations of dtype object",)),
    Case("observation_dict", "{observation_as: dict}", says=("observations of dtype object",)),
    Case(
        "observation_list_holding_a_str",
        "{observation_as: str_in_list}",
        says=("observations of dtype",),
    ),
    Case(
        "observation_short_list_at_first_reset",
        "{observation_as: short_list, fault_from: 0}",
        says=("reset(", "observation"),
    ),
    Case(
        "observation_short_list",
        "{observation_as: short_list}",
        says=("observation",),
    ),
    Case(
        "observation_array_too_long",
        "{observation_as: long_array}",
        says=("observation",),
    ),
    Case(
        "observation_nested_list",
        "{observation_as: nested_list}",
        finishes=None,  # training flattens [[x0..x3]] exactly; evaluation may take or refuse it
    ),
    # ---- an env that raises
    Case(
        "step_raises_in_every_episode",
        "{raise_in_step_at: 5}",
        says=("raised in step()", "SimulatorDiverged: pole angle exploded at episode step 5"),
    ),
    Case(
        "step_raises_with_clip",
        "{step_raises: true, fault_from: 100}",
        sets=(CLIP,),
        says=("raised in step() at env step 200",),
    ),
    Case(
        "reset_raises_first",
        "{raise_in_reset_at: 1}",
        says=("raised in reset(", "SimulatorDiverged: reset 1 failed: solver did not converge"),
    ),
    Case("reset_raises_third", "{raise_in_reset_at: 3}", says=("raised in reset(",)),
    # ---- faults in evaluation alone (training's envs are clean)
    Case(
        "evaluation_observation_1e39",
        "{observation: 1.0e+39, where: evaluation}",
        sets=(EVAL,),
        says=("observation",),
        noise="numpy's 'RuntimeWarning: overflow encountered in cast' (gymnasium's concatenate "
        "into the float32 batch) precedes the line, which then names the value as inf, "
        "where training names 1e+39 and float32's range",
    ),
    Case(
        "evaluation_step_raises",
        "{step_raises: true, where: evaluation}",
        sets=(EVAL,),
        says=("evaluation",),
    ),
    Case(
        "evaluation_reward_str",
        "{reward: abc, where: evaluation}",
        sets=(EVAL,),
        says=("evaluation",),
    ),
    Case(
        "evaluation_reward_numeric_str",
        "{reward: '2.5', where: evaluation}",
        sets=(EVAL,),
        says=("reward of type str",),
    ),
    Case(
        "evaluation_observation_short_list",
        "{observation_as: short_list, where: evaluation}",
        sets=(EVAL,),
        says=("evaluation",),
    ),
    # ---- asynchronous rollout workers
    Case(
        "async_observation_nan",
        "{observation: .nan, fault_from: 20}",
        sets=(ASYNC,),
        says=("rollout worker", "non-finite observation (nan)"),
    ),
    Case("async_reward_str", "{reward: abc}", sets=(ASYNC,), says=("reward of type str",)),
    Case("async_reward_list", "{reward: [1.0]}", sets=(ASYNC,), says=("reward of type list",)),
    Case(
        "async_reset_raises_always",
        "{raise_in_reset_at: 1}",
        sets=(ASYNC,),
        says=("SimulatorDiverged: reset 1 failed: solver did not converge",),
    ),
    Case(
        "async_step_raises_always",
        "{step_raises: true, fault_from: 3}",
        sets=(ASYNC,),
        says=("failed 5 times", "SimulatorDiverged: step"),
    ),
    Case(
        "async_slow_clip_1e39_reward_neg_inf_observation",
        "{reward: 1.0e+39, observation: -.inf, fault_from: 10, step_sleep_s: 0.003}",
        sets=(ASYNC, CLIP),
        finishes=True,
    ),
    Case(
        "async_observation_none",
        "{observation_as: none, fault_from: 20}",
        sets=(ASYNC,),
        says=("observation",),
    ),
    Case(
        "async_observation_none_with_clip",
        "{observation_as: none, fault_from: 20, where: training}",
        sets=(ASYNC, CLIP),
        says=("observation",),
    ),
    Case(
        "async_observation_str",
        "{observation_as: str, fault_from: 20}",
        sets=(ASYNC,),
        says=("observation",),
    ),
    Case(
        "async_observation_dict",
        "{observation_as: dict, fault_from: 20}",
        sets=(ASYNC,),
        says=("observation",),
    ),
    Case(
        "async_observation_short_list",
        "{observation_as: short_list, fault_from: 20}",
        sets=(ASYNC,),
        says=("observation",),
    ),
]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("faults") / "faults.yaml", BASE)


@pytest.fixture
def workers_register_the_env(monkeypatch) -> None:
    """Rollout workers import ``fault_env`` (registering the id) when they unpickle the factory."""
    monkeypatch.setattr(trpo_tf.rollout.segment, "EnvFactory", RegisteringEnvFactory)


@pytest.mark.usefixtures("workers_register_the_env")
@pytest.mark.parametrize("case", [case.param() for case in CASES])
def test_fault_ends_in_a_finished_run_or_one_error_line(
    case: Case, experiment: Path, tmp_path: Path, capfd
) -> None:
    run_dir = tmp_path / "run"
    try:
        status = train_in_process(experiment, run_dir, [f"env.kwargs={case.kwargs}", *case.sets])
    finally:
        stderr = capfd.readouterr().err
    if case.finishes or (case.finishes is None and status == 0):
        assert status == 0, stderr_lines(stderr)
        assert stray_lines(stderr) == [], stderr_lines(stderr)
        rows = finite_metrics(run_dir)
        total = 128 if EVAL in case.sets else 256
        assert int(rows[-1]["env_steps"]) == total, rows
        if "evaluation" not in case.kwargs:
            # clip_nonfinite replaces values, and says how many in metrics.csv
            assert sum(int(row["nonfinite_replaced"]) for row in rows) > 0, rows
        return
    line = the_error_line(status, stderr)
    assert (f"'{ENV_ID}'" in line) == case.names_env, line
    for fragment in case.says:
        assert fragment in line, line
    assert not (run_dir / "summary.json").exists()
    if case.noise is None:
        assert stray_lines(stderr) == [], stderr_lines(stderr)


def test_slow_env_finishes_and_a_list_observation_trains_like_an_array(
    experiment: Path, tmp_path: Path, capfd
) -> None:
    """A slow env (4 ms a step) finishes within its deadline; an observation returned as a
    list of the right length is taken exactly: the run's metrics equal the array run's."""
    slow = tmp_path / "slow"
    assert train_in_process(experiment, slow, [EVAL, "env.kwargs={step_sleep_s: 0.004}"], 60) == 0
    listed = tmp_path / "listed"
    assert train_in_process(experiment, listed, [EVAL, "env.kwargs={observation_as: list}"]) == 0
    stderr = capfd.readouterr().err
    assert stray_lines(stderr) == [], stderr_lines(stderr)
    assert same_learning(finite_metrics(slow), finite_metrics(listed))


@pytest.mark.slow  # TensorFlow's import and two workers in a fresh process: ~10 s
def test_cli_process_refuses_a_faulty_async_env_with_one_line(tmp_path: Path) -> None:
    """End to end: ``python -m trpo_tf.cli`` (the env registered by a sitecustomize in the CLI
    and its workers), a NaN observation in a rollout worker: exit 2, one line, no traceback
    from the learner or the workers."""
    experiment = write_experiment(tmp_path / "faults.yaml", BASE)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=sitecustomize_dir(tmp_path),
        PYTHONUNBUFFERED="1",
        CUDA_VISIBLE_DEVICES="",
        WANDB_MODE="disabled",
    )
    args = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--quiet"]
    args += ["--run-dir", str(tmp_path / "run"), "--set", ASYNC]
    args += ["--set", "env.kwargs={observation: .nan, fault_from: 20}"]
    result = subprocess.run(
        args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    line = the_error_line(result.returncode, result.stderr)
    assert "non-finite observation (nan)" in line
    assert stderr_lines(result.stderr) == [line]
    assert result.stdout == ""
