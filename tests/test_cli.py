"""End to end through ``python -m trpo_tf.cli`` in subprocesses (DESIGN.md contract).

One short CartPole run is trained once per module and shared; the user-error cases
run concurrently to keep the wall time down.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from trpo_tf.config import load_experiment

REPO = Path(__file__).resolve().parents[1]
CARTPOLE = REPO / "experiments" / "cartpole.yaml"
TRAIN_OVERRIDES = ["trainer.total_steps=4096", "eval.every=1", "eval.episodes=2"]
METRIC_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_time_s",
    "episode_return_mean",
    "kl",
    "surrogate_improvement",
    "line_search_accepted",
    "value_loss",
    "explained_variance",
    "eval_return",
)
SUMMARY_KEYS = (
    "env_steps",
    "wall_time_s",
    "steps_per_s",
    "final_eval_return",
    "final_eval_return_std",
    "eval_episodes",
)
# C++ logging that TensorFlow writes to stderr: none of it may reach a trpo-tf user.
TF_LOG_PREFIXES = ("WARNING: All log messages", "I0000", "E0000", "W0000")
TF_LOG_LINE = re.compile(r"^(WARNING: All log messages|[IWEF]\d{4} \d\d:\d\d:\d+)", re.M)
TIMEOUT_S = 240


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        """stderr without blank lines (TensorFlow's start-up log never reaches it)."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    return env


def _launch(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trpo_tf.cli", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait(process: subprocess.Popen) -> Result:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"trpo-tf {process.args[3:]} timed out:\n{stdout}\n{stderr}")
    return Result(process.returncode, stdout, stderr)


def _cli(args: list[str], cwd: Path) -> Result:
    return _wait(_launch(args, cwd))


def _describe(result: Result) -> str:
    return f"rc={result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _set_args(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """The subprocesses' cwd, so that a default ``runs/`` never lands in the repo."""
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained(workdir) -> tuple[Path, Result]:
    run_dir = workdir / "run"
    result = _cli(
        ["train", str(CARTPOLE), *_set_args(TRAIN_OVERRIDES), "--run-dir", str(run_dir)],
        workdir,
    )
    assert result.returncode == 0, _describe(result)
    return run_dir, result


@pytest.mark.slow
def test_train_exits_cleanly_with_plain_progress(trained):
    _, result = trained
    assert "Traceback" not in result.stderr
    # Not a TTY: no carriage returns or ANSI escapes, one progress line per report.
    for stream in (result.stdout, result.stderr):
        assert "\r" not in stream
        assert "\x1b" not in stream
    # Two progress lines (one per iteration) plus the final "done" line, on either stream.
    printed = result.stderr_lines + [line for line in result.stdout.splitlines() if line.strip()]
    assert len(printed) >= 3, _describe(result)


@pytest.mark.slow
def test_train_prints_no_tensorflow_log(trained):
    """Not one line of TensorFlow's C++ start-up log (absl, oneDNN, CUDA) on either stream."""
    _, result = trained
    for stream in (result.stdout, result.stderr):
        assert not TF_LOG_LINE.search(stream), _describe(result)
    assert all(line.startswith(("it ", "done: ")) for line in printed_lines(result)), _describe(
        result
    )


def printed_lines(result: Result) -> list[str]:
    return result.stderr_lines + [line for line in result.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_train_writes_the_resolved_config(trained):
    run_dir, _ = trained
    assert load_experiment(run_dir / "config.yaml") == load_experiment(CARTPOLE, TRAIN_OVERRIDES)


@pytest.mark.slow
def test_train_writes_one_metrics_row_per_iteration(trained):
    run_dir, _ = trained
    config = load_experiment(CARTPOLE, TRAIN_OVERRIDES)
    with open(run_dir / "metrics.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        columns = reader.fieldnames or []
    assert set(METRIC_COLUMNS) <= set(columns), sorted(set(METRIC_COLUMNS) - set(columns))
    assert len(rows) == 2
    assert [int(row["iteration"]) for row in rows] == [1, 2]
    assert [int(row["env_steps"]) for row in rows] == [2048, 4096]
    wall_times = [float(row["wall_time_s"]) for row in rows]
    assert 0 < wall_times[0] <= wall_times[1]
    for row in rows:
        assert math.isfinite(float(row["eval_return"]))  # eval.every = 1
        assert math.isfinite(float(row["episode_return_mean"]))
        assert math.isfinite(float(row["value_loss"]))
        if row["line_search_accepted"].strip().lower() in ("1", "true"):
            assert float(row["kl"]) <= config.trainer.max_kl * 1.001
            assert float(row["surrogate_improvement"]) > 0


@pytest.mark.slow
def test_train_writes_summary_and_policy(trained):
    run_dir, result = trained
    summary = json.loads((run_dir / "summary.json").read_text())
    missing = [key for key in SUMMARY_KEYS if key not in summary]
    assert not missing
    assert summary["env_steps"] == 4096
    assert summary["eval_episodes"] == 2
    assert summary["wall_time_s"] > 0
    assert summary["steps_per_s"] > 0
    assert math.isfinite(summary["final_eval_return"])
    assert summary["final_eval_return_std"] >= 0
    assert summary["update_retraces"] == 0  # each compiled function was traced once
    assert summary["update_devices"] == ["CPU:0"]  # where θ and so the policy step lived
    # Training time stops before the final checkpoint/export; both parts add up to the wall.
    assert 0 < summary["eval_time_s"] < summary["train_time_s"] < summary["wall_time_s"]
    assert summary["finalize_time_s"] > 0
    assert summary["train_time_s"] + summary["finalize_time_s"] == pytest.approx(
        summary["wall_time_s"], abs=2e-3
    )
    assert summary["train_steps_per_s"] == pytest.approx(
        summary["env_steps"] / (summary["train_time_s"] - summary["eval_time_s"]), rel=1e-2
    )
    with open(run_dir / "metrics.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert summary["final_eval_return"] == pytest.approx(float(last["eval_return"]))
    assert (run_dir / "policy").is_dir()
    assert (run_dir / "policy" / "normalizer.npz").is_file()
    assert str(run_dir) in result.stdout


@pytest.mark.slow
def test_eval_of_the_trained_run(trained, workdir):
    run_dir, _ = trained
    result = _cli(["eval", str(run_dir), "--episodes", "2"], workdir)
    assert result.returncode == 0, _describe(result)
    assert "eval return" in result.stdout
    assert "2 episodes" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_eval_of_a_run_defaults_to_its_own_evaluation_and_reproduces_summary(trained, workdir):
    run_dir, _ = trained
    summary = json.loads((run_dir / "summary.json").read_text())
    result = _cli(["eval", str(run_dir)], workdir)
    assert result.returncode == 0, _describe(result)
    expected = (
        f"eval return {summary['final_eval_return']:.2f} ± "
        f"{summary['final_eval_return_std']:.2f} over {summary['eval_episodes']} episodes"
    )
    assert expected in result.stdout, (expected, result.stdout)


def test_eval_help_documents_the_default_seeds(capsys):
    from trpo_tf.cli import EXPORT_EVAL_SEED, main
    from trpo_tf.evaluation import EVAL_SEED_OFFSET

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    # The help spells the training offset out (the CLI does not import the evaluator
    # for --help): it must stay the evaluator's.
    assert f"config seed + {EVAL_SEED_OFFSET}" in text and "summary.json" in text
    assert str(EXPORT_EVAL_SEED) in text


def _train_args(override: str, run_dir: Path) -> list[str]:
    return ["train", str(CARTPOLE), "--set", override, "--run-dir", str(run_dir)]


ERROR_CASES = {
    # name: (args builder(workdir, trained run dir), checks on the error line)
    "unknown_key": (
        lambda d, run: _train_args("trainer.max_kll=0.1", d / "e-key"),
        lambda msg: "trainer.max_kll" in msg and re.search(r"trainer\.max_kl(?!l)", msg),
    ),
    "missing_experiment": (
        lambda d, run: ["train", str(d / "no-such-experiment.yaml")],
        lambda msg: "no-such-experiment.yaml" in msg,
    ),
    "unknown_distribution": (
        lambda d, run: _train_args("policy.distribution=gausian", d / "e-dist"),
        lambda msg: "gausian" in msg and "diag_gaussian" in msg,
    ),
    "distribution_does_not_fit_space": (
        lambda d, run: _train_args("policy.distribution=diag_gaussian", d / "e-space"),
        lambda msg: "diag_gaussian" in msg and "Discrete" in msg,
    ),
    "unknown_env": (
        lambda d, run: _train_args("env.id=CartPol-v1", d / "e-env"),
        lambda msg: "CartPol-v1" in msg and "CartPole-v1" in msg,
    ),
    "unknown_tracker": (
        lambda d, run: _train_args("tracking.plugins={my_trackr: {}}", d / "e-tracker"),
        lambda msg: "my_trackr" in msg,
    ),
    "eval_empty_directory": (
        lambda d, run: ["eval", str(d / "empty")],
        lambda msg: "empty" in msg,
    ),
    "resume_with_other_n_envs": (
        lambda d, run: (
            ["train", "--resume", str(run), "--set", "env.n_envs=4"]
            + ["--set", "trainer.total_steps=12288"]
        ),
        lambda msg: "cannot change env.n_envs on --resume (8 in " in msg and "requested 4" in msg,
    ),
    "eval_zero_episodes": (
        lambda d, run: ["eval", str(run), "--episodes", "0"],
        lambda msg: "--episodes must be >= 1" in msg and "got 0" in msg,
    ),
    "eval_negative_episodes": (
        lambda d, run: ["eval", str(run), "--episodes", "-3"],
        lambda msg: "--episodes must be >= 1" in msg and "got -3" in msg,
    ),
    "eval_negative_seed": (
        lambda d, run: ["eval", str(run), "--seed", "-1"],
        lambda msg: "--seed must be >= 0" in msg,
    ),
    "eval_video_into_a_file": (
        lambda d, run: ["eval", str(run), "--episodes", "1", "--video", str(d / "afile")],
        lambda msg: "--video" in msg and "afile is an existing file" in msg,
    ),
    "export_out_is_a_file": (
        lambda d, run: ["export", str(run), "--out", str(d / "afile")],
        lambda msg: "--out" in msg and "afile is an existing file" in msg,
    ),
    "plot_out_under_a_file": (
        lambda d, run: ["plot", str(run), "--out", str(d / "afile" / "x.png")],
        lambda msg: "afile is a file, not a directory" in msg,
    ),
    "plot_out_unsupported_extension": (
        lambda d, run: ["plot", str(run), "--out", str(d / "x.txt")],
        lambda msg: "'.txt'" in msg and ".png" in msg and ".pdf" in msg and ".svg" in msg,
    ),
    "train_into_existing_run": (
        lambda d, run: ["train", str(CARTPOLE), "--run-dir", str(run)],
        lambda msg: "already" in msg,
    ),
}


@pytest.fixture(scope="module")
def error_results(workdir, trained) -> dict[str, Result]:
    """Every user-error case, run concurrently (most import TensorFlow: ~4 s each)."""
    run_dir, _ = trained
    (workdir / "empty").mkdir()
    (workdir / "afile").write_text("not an output directory")
    processes = {
        name: _launch(build(workdir, run_dir), workdir) for name, (build, _) in ERROR_CASES.items()
    }
    return {name: _wait(process) for name, process in processes.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_error_is_one_line_and_status_2(error_results, workdir, case):
    result = error_results[case]
    assert result.returncode == 2, _describe(result)
    assert "Traceback" not in result.stderr, _describe(result)
    lines = result.stderr_lines
    assert len(lines) == 1, _describe(result)
    assert lines[0].startswith("trpo-tf: error:"), _describe(result)
    assert ERROR_CASES[case][1](lines[0]), lines[0]
    # A config error leaves no half-made run directory behind.
    for leftover in ("e-key", "e-dist", "e-space", "e-env", "e-tracker"):
        assert not (workdir / leftover).exists()
    assert (workdir / "afile").read_text() == "not an output directory"
    assert not (workdir / "x.txt").exists()


@pytest.mark.slow
def test_a_refused_resume_leaves_the_run_as_it_was(error_results, trained):
    run_dir, _ = trained
    assert load_experiment(run_dir / "config.yaml") == load_experiment(CARTPOLE, TRAIN_OVERRIDES)
    assert not (run_dir / "checkpoints" / "iter_000004").exists()


def test_plugins_lists_builtins_with_their_package(workdir):
    result = _cli(["plugins"], workdir)
    assert result.returncode == 0, _describe(result)
    lines = result.stdout.splitlines()
    for name in ("categorical", "diag_gaussian", "gae", "mc"):
        matching = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(matching) == 1, (name, result.stdout)
        # The providing distribution, however its metadata spells the name.
        providers = [word.replace("-", "_") for word in matching[0].split()[1:]]
        assert "trpo_tf" in providers, matching[0]


# --------------------------------------------------------------------------- argument checks
# In-process: each of these stops before TensorFlow loads or anything is written.


def _main_error(args: list[str], capsys) -> str:
    from trpo_tf.cli import main

    assert main(args) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("trpo-tf: error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--resume", "RUN"], "cannot be combined with --resume"),
        ([], "train --seeds needs an EXPERIMENT to train"),
    ],
)
def test_seeds_with_resume_or_without_experiment_is_one_line(tmp_path, capsys, extra, expected):
    run_dir = tmp_path / "run"
    args = [a.replace("RUN", str(run_dir)) for a in extra]
    line = _main_error(["train", "--seeds", "0-1", *args], capsys)
    assert expected in line
    assert not run_dir.exists()


SHORT = ["--set", "trainer.total_steps=2048", "--set", "eval.episodes=1", "--quiet"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["CARTPOLE", "--resume", "RUN"], "cartpole.yaml would be ignored; drop it"),
        (["--resume", "RUN", "--run-dir", "OTHER"], "not --run-dir"),
        (["CARTPOLE", "--parallel", "2", "--run-dir", "RUN", *SHORT], "needs --seeds"),
        (["CARTPOLE", "--log-every", "0", "--run-dir", "RUN", *SHORT], "--log-every must be >= 1"),
        (["CARTPOLE", "--log-every", "-1", "--run-dir", "RUN", *SHORT], "got -1"),
    ],
)
def test_options_that_would_be_ignored_are_one_line_errors(tmp_path, capsys, args, expected):
    paths = {"CARTPOLE": str(CARTPOLE), "RUN": str(tmp_path / "run"), "OTHER": str(tmp_path / "o")}
    line = _main_error(["train", *(paths.get(arg, arg) for arg in args)], capsys)
    assert expected in line, line
    assert not (tmp_path / "run").exists() and not (tmp_path / "o").exists()


def test_resume_may_name_its_own_directory_as_run_dir(tmp_path, capsys):
    run_dir = tmp_path / "run"
    line = _main_error(["train", "--resume", str(run_dir), "--run-dir", str(run_dir)], capsys)
    assert "has no config.yaml" in line  # got past the option checks


def _run_that_failed_at_start(tmp_path: Path) -> Path:
    """What an error in the first iteration leaves: config, header-only metrics, tensorboard/."""
    from trpo_tf.config import dump_experiment
    from trpo_tf.tracking.run_dir import METRIC_COLUMNS as COLUMNS

    run_dir = tmp_path / "run"
    (run_dir / "tensorboard").mkdir(parents=True)
    dump_experiment(load_experiment(CARTPOLE), run_dir / "config.yaml")
    (run_dir / "metrics.csv").write_text(",".join(COLUMNS) + "\n")
    return run_dir


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_that_failed_at_start_says_how_to_retry(tmp_path, capsys, resume):
    run_dir = _run_that_failed_at_start(tmp_path)
    before = sorted(run_dir.rglob("*"))
    args = ["--resume", str(run_dir)] if resume else [str(CARTPOLE), "--run-dir", str(run_dir)]
    line = _main_error(["train", *args], capsys)
    assert "remove" in line and "another --run-dir" in line, line
    assert f"--resume {run_dir}" not in line, line  # no dead end: it has no checkpoint
    assert sorted(run_dir.rglob("*")) == before  # nothing deleted for the user


@pytest.mark.parametrize("seeds", [False, True])
@pytest.mark.parametrize("inside", [False, True])
def test_run_dir_that_is_a_file_is_one_line(tmp_path, capsys, seeds, inside):
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n")
    run_dir = existing / "run" if inside else existing
    args = ["train", str(CARTPOLE), "--run-dir", str(run_dir), *SHORT]
    line = _main_error(args + (["--seeds", "0"] if seeds else []), capsys)
    assert f"run directory {run_dir}: " in line or f"run directory {run_dir} is" in line, line
    assert "file" in line, line
    assert existing.read_text() == "keep me\n"


def test_train_api_refuses_a_run_dir_that_is_a_file(tmp_path):
    from trpo_tf.errors import OutputPathError
    from trpo_tf.train import train

    existing = tmp_path / "notes.txt"
    existing.write_text("keep me\n")
    with pytest.raises(OutputPathError, match="run directory .*notes.txt is an existing file"):
        train(load_experiment(CARTPOLE, ["trainer.total_steps=2048"]), existing, quiet=True)


@pytest.mark.slow
def test_video_without_its_renderer_fails_before_the_episodes(trained, monkeypatch, capsys):
    from trpo_tf import extras
    from trpo_tf.cli import main

    run_dir, _ = trained
    monkeypatch.setattr(extras, "installed", lambda module: module != "pygame")
    assert main(["eval", str(run_dir), "--video", str(run_dir.parent / "clips")]) == 2
    captured = capsys.readouterr()
    assert "eval return" not in captured.out  # no episode ran
    assert captured.err.strip() == (
        "trpo-tf: error: --video of 'CartPole-v1' needs a video renderer (pygame), which is "
        'not installed: pip install "trpo_tf[video]"'
    )


def test_version_and_python_dash_m(workdir):
    from trpo_tf import __version__

    for command in (["-m", "trpo_tf"], ["-m", "trpo_tf.cli"]):
        result = subprocess.run(
            [sys.executable, *command, "--version"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and result.stdout == f"trpo-tf {__version__}\n"


def test_every_run_directory_argument_is_named_run_dir(capsys):
    from trpo_tf.cli import build_parser

    parser = build_parser()
    for command in ("train", "eval", "export", "plot", "summary"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        usage = capsys.readouterr().out.split("\n\n")[0]
        assert "RUN_DIR" in usage, (command, usage)
        assert not re.search(r"(?<![.\w])(PATH|RUN_DIRS|run_dir|path)\b", usage), (command, usage)


@pytest.mark.slow
def test_the_console_script_exits_with_its_status_without_a_slow_teardown(workdir):
    """After TensorFlow is loaded, run() ends the process right after the exit handlers:
    the status and the streams are kept (here: an export of a missing run, status 2)."""
    start = time.monotonic()
    result = _cli(["export", str(workdir / "missing")], workdir)
    assert result.returncode == 2, _describe(result)
    (line,) = result.stderr_lines
    assert line.startswith("trpo-tf: error: ") and "missing" in line, _describe(result)
    assert time.monotonic() - start < 60
