"""The run directory (contract in DESIGN.md).

::

    RUN_DIR/
      config.yaml     the fully resolved experiment
      metrics.csv     one row per iteration (eval columns filled on eval rows)
      summary.json    written at the end (strict JSON: null for a NaN/inf value)
      policy/         final weights + normalizer statistics
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf.config.loader import dump_experiment
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.outputs import check_output_dir

METRIC_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_time_s",
    "fps",
    "episode_return_mean",
    "episode_length_mean",
    "episodes",
    "kl",
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
    "eval_return",
    "eval_return_std",
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


class RunDirectory:
    """Writes ``config.yaml``, appends to ``metrics.csv``, writes ``summary.json``."""

    def __init__(
        self, path: Path, config: ExperimentConfig, resume_after: int | None = None
    ) -> None:
        """Start a run directory, or continue one after iteration ``resume_after``.

        On resume, ``metrics.csv`` keeps the rows up to ``resume_after`` (rows a
        crashed process wrote after its last checkpoint are dropped, since the
        resumed run recomputes them) and new rows are appended.
        """
        self.path = Path(path)
        # What was there before this run started (None: no directory), for discard().
        self._names_before = {p.name for p in self.path.iterdir()} if self.path.is_dir() else None
        self.path.mkdir(parents=True, exist_ok=True)
        dump_experiment(config, self.path / "config.yaml")
        metrics = self.path / "metrics.csv"
        kept: list[dict[str, str]] = []
        if resume_after is not None and metrics.exists():
            with open(metrics, newline="") as handle:
                kept = [
                    row
                    for row in csv.DictReader(handle)
                    if row.get("iteration") and int(row["iteration"]) <= resume_after
                ]
        self._metrics_file = open(metrics, "w", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(self._metrics_file, fieldnames=METRIC_COLUMNS)
        self._writer.writeheader()
        for row in kept:
            self._writer.writerow({k: row.get(k, "") for k in METRIC_COLUMNS})
        self._metrics_file.flush()

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
        self._writer.writerow({k: _cell(row.get(k)) for k in METRIC_COLUMNS})
        self._metrics_file.flush()

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write ``summary.json`` (strict JSON: a NaN/inf value is written ``null``)."""
        missing = [k for k in SUMMARY_KEYS if k not in summary]
        if missing:
            raise KeyError(f"summary lacks {missing}")
        path = self.path / "summary.json"
        path.write_text(json.dumps(json_safe(dict(summary)), indent=2, allow_nan=False) + "\n")
        return path

    def close(self) -> None:
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
            if path.name in self._names_before:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
