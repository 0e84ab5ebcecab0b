"""Running ``trpo-tf train`` on a faulty env or a fuzzed experiment, and judging the outcome.

Every case ends one of two ways, never in a traceback, a crash or a hang:

* **finished**: exit status 0 and a run directory whose ``metrics.csv`` and
  ``summary.json`` hold only finite numbers;
* **refused**: exit status 2 and exactly one ``trpo-tf: error:`` line on stderr.

In-process runs call :func:`trpo_tf.cli.main`, the CLI's own code path; a run that
outlives its :func:`deadline` is stopped by an exception no library handler catches.
"""

from __future__ import annotations

import contextlib
import csv
import faulthandler
import json
import math
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from trpo_tf.cli import main

TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages")
ERROR_PREFIX = "trpo-tf: error: "
NOTE_PREFIXES = ("trpo-tf: warning: ", "[trpo-tf ")
"""stderr lines besides the error that are the library's own: warnings and progress notes."""
TIME_COLUMNS = {"wall_time_s", "fps", "rollout_time_s", "update_time_s"}
"""``metrics.csv`` columns that differ between two runs of one experiment."""


class Hang(BaseException):  # noqa: N818 - named after what it reports
    """A run outlived its deadline.

    A ``BaseException``, so that no ``except Exception`` in the library (an env
    step's handler, say) turns it into a one-line error that would pass for a result.
    """


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds``; abort the process later.

    The alarm interrupts Python code (a sleeping env, a waiting runner); if the
    process is stuck in C code that never returns, faulthandler dumps every thread's
    stack and exits the test process 30 s later instead of hanging CI.
    """

    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"{what}: still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds + 30, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def stderr_lines(text: str) -> list[str]:
    """Non-empty stderr lines, TensorFlow's own C++ log lines left out."""
    return [
        line for line in text.splitlines() if line.strip() and not line.startswith(TF_LOG_PREFIXES)
    ]


def stray_lines(stderr: str) -> list[str]:
    """stderr lines that are neither the error line nor the library's notes (e.g. a numpy
    RuntimeWarning and its source line)."""
    return [
        line
        for line in stderr_lines(stderr)
        if not line.startswith(ERROR_PREFIX) and not line.startswith(NOTE_PREFIXES)
    ]


def the_error_line(returncode: int | None, stderr: str) -> str:
    """The ``trpo-tf: error:`` line of a refused run (asserting the contract)."""
    lines = stderr_lines(stderr)
    assert not any("Traceback" in line for line in lines), "\n".join(lines)
    assert returncode == 2, (returncode, lines)
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, lines
    return errors[0]


def _show_on_stderr(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def warnings_on_stderr() -> Iterator[None]:
    """Python warnings printed to stderr, every time, as a fresh ``trpo-tf`` process would
    (pytest would record them instead, and show each location once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # TensorFlow Probability's, filtered in pyproject.toml too
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.showwarning = _show_on_stderr
        yield


def write_experiment(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def train_in_process(
    experiment: Path, run_dir: Path, overrides: Sequence[str] = (), timeout_s: float = 90
) -> int:
    """``trpo-tf train EXPERIMENT --quiet --run-dir RUN_DIR --set ...`` in this process."""
    argv = ["train", str(experiment), "--quiet", "--run-dir", str(run_dir)]
    for override in overrides:
        argv += ["--set", override]
    with deadline(timeout_s, f"trpo-tf {' '.join(argv)}"), warnings_on_stderr():
        return main(argv)


def finite_metrics(run_dir: Path) -> list[dict[str, str]]:
    """``metrics.csv``'s rows, asserting every number in it and in ``summary.json`` is finite."""
    summary = json.loads((run_dir / "summary.json").read_text())
    for key, value in summary.items():
        if isinstance(value, float):
            assert math.isfinite(value), (key, value)
    with (run_dir / "metrics.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert rows, "metrics.csv has no rows"
    for row in rows:
        for column, cell in row.items():
            if column == "skip_reason" or not cell:
                continue
            assert math.isfinite(float(cell)), (column, cell, row["iteration"])
    return rows


def same_learning(rows: list[dict[str, str]], other: list[dict[str, str]]) -> bool:
    """Whether two runs' metrics agree in everything but the timings."""

    def learned(table: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in table]

    return learned(rows) == learned(other)
