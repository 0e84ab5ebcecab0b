"""Reading finished run directories back: seeds, final returns, summary tables.

A *run* is a directory holding ``metrics.csv``. A directory without one whose
``seed_*`` subdirectories are runs (what ``trpo-tf train --seeds`` writes) stands
for those runs. Runs are grouped into experiments by the ``name`` in their
``config.yaml``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from trpo_tf.errors import RunDirError


def _seed_key(path: Path) -> tuple[int, str]:
    suffix = path.name.split("_", 1)[-1]
    return (int(suffix), path.name) if suffix.isdigit() else (1 << 30, path.name)


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories named by ``paths`` (a parent of ``seed_*`` runs counts as them).

    Raises:
        RunDirError: a path is missing or holds neither a run nor ``seed_*`` runs.
    """
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "metrics.csv").is_file():
            runs.append(path)
            continue
        if not path.is_dir():
            raise RunDirError(f"run directory {path} does not exist")
        seeds = sorted(
            (child for child in path.glob("seed_*") if (child / "metrics.csv").is_file()),
            key=_seed_key,
        )
        if not seeds:
            raise RunDirError(
                f"{path} holds no metrics.csv and no seed_*/metrics.csv; "
                "pass a run directory or a parent written by --seeds"
            )
        runs.extend(seeds)
    return runs


def read_metrics(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``metrics.csv`` as float columns; empty cells are NaN."""
    path = Path(run_dir) / "metrics.csv"
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
            columns = list(rows[0].keys()) if rows else []
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist") from None

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {name: np.array([number(row.get(name)) for row in rows]) for name in columns}


def experiment_name(run_dir: str | Path) -> str:
    """The ``name`` in the run's ``config.yaml`` (the directory name if unreadable)."""
    path = Path(run_dir)
    try:
        data = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        name = data.get("name") if isinstance(data, dict) else None
    except (OSError, yaml.YAMLError):
        name = None
    if isinstance(name, str) and name:
        return name
    return path.parent.name if path.name.startswith("seed_") else path.name


def group_by_experiment(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs keyed by experiment name, in first-seen order."""
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(experiment_name(run), []).append(run)
    return groups


def final_eval_return(run_dir: Path) -> float:
    """``summary.json``'s final eval return, else the last eval in ``metrics.csv``."""
    summary = read_summary(run_dir)
    value = summary.get("final_eval_return")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    evals = read_metrics(run_dir).get("eval_return", np.zeros(0))
    evals = evals[np.isfinite(evals)]
    return float(evals[-1]) if evals.size else math.nan


def read_summary(run_dir: Path) -> dict:
    try:
        data = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle half: drop ``floor(n/4)`` values at each end (as rliable)."""
    values = np.sort(np.asarray(values, dtype=float))
    if values.size == 0:
        return math.nan
    cut = int(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


@dataclass(frozen=True)
class ExperimentSummary:
    """One experiment's row of ``trpo-tf summary``."""

    experiment: str
    seeds: int
    final_return_mean: float
    final_return_std: float
    final_return_iqm: float
    steps_per_s: float


def summarize(paths: list[str | Path]) -> list[ExperimentSummary]:
    """Final eval return (mean ± std and IQM across seeds) and steps/s per experiment."""
    rows = []
    for name, runs in group_by_experiment(expand_runs(paths)).items():
        finals = np.array([final_eval_return(run) for run in runs])
        finals = finals[np.isfinite(finals)]
        speeds = [read_summary(run).get("steps_per_s") for run in runs]
        speeds = [float(s) for s in speeds if isinstance(s, (int, float))]
        rows.append(
            ExperimentSummary(
                experiment=name,
                seeds=len(runs),
                final_return_mean=float(finals.mean()) if finals.size else math.nan,
                final_return_std=float(finals.std()) if finals.size else math.nan,
                final_return_iqm=interquartile_mean(finals),
                steps_per_s=float(np.mean(speeds)) if speeds else math.nan,
            )
        )
    return rows


def format_summary_table(rows: list[ExperimentSummary]) -> str:
    """A plain-text table, one line per experiment."""
    header = ("experiment", "seeds", "final eval return", "IQM", "steps/s")
    lines = [
        (
            row.experiment,
            str(row.seeds),
            f"{row.final_return_mean:.2f} ± {row.final_return_std:.2f}",
            f"{row.final_return_iqm:.2f}",
            f"{row.steps_per_s:,.0f}" if math.isfinite(row.steps_per_s) else "-",
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(cells) for cells in lines)])
