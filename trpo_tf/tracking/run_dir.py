"""The run directory (contract in DESIGN.md).

::

    RUN_DIR/
      config.yaml     the fully resolved experiment
      metrics.csv     one row per iteration (eval columns filled on eval rows)
      summary.json    written at the end (strict JSON: null for a NaN/inf value)
      policy/         final weights + normalizer statistics
      run.json        the run's id (its checkpoints carry it)
      .trpo-tf.lock   held by the one process writing the run (trpo_tf.run.lock)
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf import atomic
from trpo_tf.config.loader import dump_experiment
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.outputs import check_output_dir
from trpo_tf.run.lock import LOCK_FILE

METRIC_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_time_s",
    "fps",
    "episode_return_mean",
    "episode_length_mean",
    "episodes",
    "kl",
    "max_kl",
    "surrogate_improvement",
    "line_search_steps",
    "line_search_accepted",
    "skip_reason",
    "grad_norm",
    "entropy",
    "policy_std",
    "value_loss",
    "explained_variance",
    "rollout_time_s",
    "update_time_s",
    "nonfinite_replaced",
    "policy_lag_mean",
    "policy_lag_max",
    "is_weight_mean",
    "is_weight_max",
    "is_ess",
    "dropped_fraction",
    "dropped_steps",  # [rollout] running totals of the async runners
    "worker_restarts",
    "eval_return",
    "eval_return_std",
    "eval_return_stochastic",
)

SUMMARY_KEYS = (
    "env_steps",
    "wall_time_s",
    "steps_per_s",
    "final_eval_return",
    "final_eval_return_std",
    "eval_episodes",
)


def check_run_dir_path(path: str | Path) -> None:
    """Raise unless ``path`` is a directory or can be created as one.

    Raises:
        OutputPathError: ``path``, or a folder above it, is an existing file.
    """
    check_output_dir(path, "run directory")


def check_new_run_dir(path: str | Path, locked_here: bool = False) -> None:
    """Raise unless ``path`` is free for a new run (no run in it, no live process on it).

    Args:
        locked_here: this process holds the directory's lock (skip the lock check).

    Raises:
        RunInUseError: a live process holds the directory.
        RunDirError: it holds a finished or stopped run (the message says how to
            continue it, or that it cannot be continued).
    """
    from trpo_tf.checkpoint import CheckpointManager
    from trpo_tf.errors import RunDirError
    from trpo_tf.run.lock import check_not_in_use

    path = Path(path)
    if not locked_here:
        check_not_in_use(path)
    if not (path / "metrics.csv").exists():
        return
    if CheckpointManager(path / "checkpoints", keep=1).latest() is None:
        raise RunDirError(
            f"run directory {path} holds a run that stopped before its first "
            "checkpoint, so --resume cannot continue it; remove it (nothing is "
            "deleted for you) or pass another --run-dir"
        )
    raise RunDirError(
        f"run directory {path} already holds a run; pass another --run-dir, "
        f"remove it, or continue it with --resume {path}"
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/±inf float (nested too) replaced by None.

    Strict JSON has no NaN or Infinity; ``summary.json`` writes ``null`` instead
    (e.g. ``final_eval_return`` when every evaluation episode returned NaN).
    """
    if isinstance(value, Mapping):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


RUN_FILE = "run.json"
"""``{"run_id": ...}``: the run's identity, carried by each of its checkpoints."""


def run_id_of(run_dir: str | Path) -> str:
    """The id in ``RUN_DIR/run.json`` ("" when absent or unreadable)."""
    try:
        record = json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return ""
    run_id = record.get("run_id") if isinstance(record, dict) else None
    return run_id if isinstance(run_id, str) else ""


class RunDirectory:
    """Writes ``config.yaml``, appends to ``metrics.csv``, writes ``summary.json``.

    Every file is replaced atomically (:mod:`trpo_tf.atomic`); ``metrics.csv`` is
    appended row by row, each row flushed whole.
    """

    def __init__(
        self,
        path: Path,
        config: ExperimentConfig,
        resume_after: int | None = None,
        existed: bool | None = None,
    ) -> None:
        """Start a run directory, or continue one after iteration ``resume_after``.

        On resume, ``metrics.csv`` keeps the rows up to ``resume_after`` (rows a
        crashed process wrote after its last checkpoint are dropped, since the
        resumed run recomputes them) and new rows are appended. The kept rows are
        written to a new file that replaces the old one atomically.

        Args:
            existed: whether ``path`` existed before this run touched it (for
                :meth:`discard`; default: whether it exists now).
        """
        self.path = Path(path)
        if existed is None:
            existed = self.path.is_dir()
        # What was there before this run started (None: no directory), for discard().
        self._names_before = (
            {p.name for p in self.path.iterdir()} - {LOCK_FILE} if existed else None
        )
        with atomic.translated_errors(self.path, "run directory"):
            self.path.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id_of(self.path) if resume_after is not None else ""
        if not self.run_id:
            self.run_id = uuid.uuid4().hex
            atomic.write_text(
                self.path / RUN_FILE, json.dumps({"run_id": self.run_id}) + "\n", "run record"
            )
        self.write_config(config)
        metrics = self.path / "metrics.csv"
        kept: list[dict[str, str]] = []
        if resume_after is not None and metrics.exists():
            with open(metrics, newline="", encoding="utf-8") as handle:
                kept = [
                    row
                    for row in csv.DictReader(handle)
                    if row.get("iteration") and int(row["iteration"]) <= resume_after
                ]

        def fill(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
                writer.writeheader()
                for row in kept:
                    writer.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})

        atomic.write_file(metrics, fill, "metrics")
        with atomic.translated_errors(metrics, "metrics"):
            self._metrics_file = open(metrics, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.DictWriter(self._metrics_file, fieldnames=METRIC_COLUMNS)

    def write_config(self, config: ExperimentConfig) -> Path:
        """Write ``config.yaml`` atomically."""
        return atomic.write_file(
            self.path / "config.yaml", lambda tmp: dump_experiment(config, tmp), "config"
        )

    @property
    def policy_dir(self) -> Path:
        return self.path / "policy"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one iteration's row; unknown keys are an error (no silent loss)."""
        unknown = set(row) - set(METRIC_COLUMNS)
        if unknown:
            raise KeyError(f"metrics row has columns not in METRIC_COLUMNS: {sorted(unknown)}")
        line = io.StringIO()
        csv.DictWriter(line, fieldnames=METRIC_COLUMNS).writerow(
            {k: _cell(row.get(k)) for k in METRIC_COLUMNS}
        )
        # One write call per row: a full disk or a kill leaves whole rows behind.
        with atomic.translated_errors(self.path / "metrics.csv", "metrics"):
            atomic.inject_faults("metrics.csv")
            self._metrics_file.write(line.getvalue())
            self._metrics_file.flush()

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (strict JSON: a NaN/inf value is written ``null``)."""
        missing = [k for k in SUMMARY_KEYS if k not in summary]
        if missing:
            raise KeyError(f"summary lacks {missing}")
        text = json.dumps(json_safe(dict(summary)), indent=2, allow_nan=False) + "\n"
        return atomic.write_text(self.path / "summary.json", text, "summary")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._metrics_file.close()

    def discard(self) -> None:
        """Close, and remove what was created in the directory since this object was made.

        The whole directory when it did not exist before; otherwise only the new
        entries, so files that were there stay.
        """
        self.close()
        if self._names_before is None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for path in self.path.iterdir():
            if path.name in self._names_before or path.name == LOCK_FILE:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
