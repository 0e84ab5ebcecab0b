"""Reading finished run directories back: seeds, final returns, summary tables.

A *run* is a directory holding ``metrics.csv``. A directory without one stands for
the runs below it at any depth (a ``--seeds`` parent's ``seed_*``, or ``runs/``
with everything trained into it); a run's own subfolders are not searched. Runs
are grouped into experiments by their ``config.yaml``: the seeds of one experiment
share its ``name`` and every setting except the run-specific keys
(:data:`RUN_SPECIFIC_KEYS`). Runs of one name with different settings are separate
experiments, labelled with the keys that differ.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trpo_tf.errors import RunDirError, TrpoTfError, TrpoTfWarning

RUN_SPECIFIC_KEYS = ("seed", "tracking", "checkpoint")
"""Top-level config keys that differ between seeds of one experiment (not settings)."""
_MAX_LABEL_KEYS = 3


def _seed_key(part: str | Path) -> tuple[int, str]:
    name = Path(part).name
    suffix = name.split("_", 1)[-1]
    return (int(suffix), name) if name.startswith("seed_") and suffix.isdigit() else (1 << 30, name)


def _runs_below(root: Path) -> list[Path]:
    """Runs under ``root`` at any depth, sorted by folder with ``seed_N`` in seed order."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        if "metrics.csv" in files:
            found.append(Path(directory))
            subdirs.clear()  # a run's own folders (checkpoints, export, ...) hold no runs
            continue
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
    return sorted(found, key=lambda path: [_seed_key(part) for part in path.parts])


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories named by ``paths``: a run, or every run below a folder.

    Raises:
        RunDirError: a path is missing or holds no run at any depth.
    """
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "metrics.csv").is_file():
            runs.append(path)
            continue
        if not path.is_dir():
            raise RunDirError(f"run directory {path} does not exist")
        below = _runs_below(path)
        if not below:
            raise RunDirError(
                f"{path} holds no run (no metrics.csv in it or in any folder below it); "
                "pass a run directory or a folder of runs such as a --seeds parent"
            )
        runs.extend(below)
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


class DuplicateSeedWarning(TrpoTfWarning):
    """Two runs of one experiment group have the same seed (counted twice)."""


def read_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``config.yaml`` as a dict, or None when missing or unreadable."""
    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def experiment_name(run_dir: str | Path, config: dict[str, Any] | None) -> str:
    """The ``name`` in the run's ``config`` (:func:`read_config`; the directory name
    if it has none)."""
    path = Path(run_dir)
    name = (config or {}).get("name")
    if isinstance(name, str) and name:
        return name
    return path.parent.name if path.name.startswith("seed_") else path.name


def flatten_settings(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"trainer.max_kl": "0.05", ...}``: dotted key paths to compact YAML values."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_settings(value, f"{path}."))
        else:
            text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
            flat[path] = text.removesuffix("\n...").strip()
    return flat


def experiment_settings(config: dict[str, Any] | None) -> tuple[tuple[str, str], ...] | None:
    """A run's ``config`` without :data:`RUN_SPECIFIC_KEYS` (None without a config)."""
    if config is None:
        return None
    # Dropped before resolving (a run-specific section today's schema refuses must not
    # leave the settings unresolved) and after (resolving fills them back in).
    kept = {key: value for key, value in config.items() if key not in RUN_SPECIFIC_KEYS}
    resolved = _with_defaults(kept)
    settings = {key: value for key, value in resolved.items() if key not in RUN_SPECIFIC_KEYS}
    return tuple(sorted(flatten_settings(settings).items()))


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as the schema resolves it: a key that a run's ``config.yaml`` lacks (one
    written before the key existed) takes its default, so it matches a run that wrote
    the default out. A config today's schema refuses is compared as written."""
    from trpo_tf.config import experiment_from_dict, to_dict

    try:
        return to_dict(experiment_from_dict(config))
    except TrpoTfError:
        return config


def _labels(keys: list[tuple[str, Any]], first_runs: list[Path]) -> list[str]:
    """A distinct label per (name, settings) group: the name, plus what differs."""
    labels = []
    for (name, settings), first in zip(keys, first_runs, strict=True):
        rivals = [other for other_name, other in keys if other_name == name]
        if len(rivals) == 1 or settings is None:
            labels.append(name)
            continue
        values = [dict(other or ()) for other in rivals]
        own = dict(settings)
        differing = sorted(
            key for key in set().union(*values) if len({v.get(key, "<unset>") for v in values}) > 1
        )
        if 0 < len(differing) <= _MAX_LABEL_KEYS:
            shown = ", ".join(f"{key}={own.get(key, '<unset>')}" for key in differing)
            labels.append(f"{name} [{shown}]")
        else:
            run = first.parent.name if first.name.startswith("seed_") else first.name
            labels.append(f"{name} [{run}]")
    for index, label in enumerate(labels):  # still equal (e.g. same directory names)
        if labels.count(label) > 1:
            labels[index] = f"{label} [{first_runs[index]}]"
    return labels


def _warn_duplicate_seeds(label: str, runs: list[Path], seeds: list[Any]) -> None:
    seen: dict[Any, Path] = {}
    for run, seed in zip(runs, seeds, strict=True):
        if seed is None:
            continue
        if seed in seen:
            warnings.warn(
                DuplicateSeedWarning(
                    f"trpo-tf: warning: {seen[seed]} and {run} are both seed {seed} of "
                    f"'{label}' with the same settings; they count as two seeds (pass each "
                    "run once, or train another seed)"
                ),
                stacklevel=3,
            )
        else:
            seen[seed] = run


def group_by_experiment(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs grouped into experiments, in first-seen order, keyed by a distinct label.

    Runs are one experiment when their ``config.yaml`` names and settings match
    apart from :data:`RUN_SPECIFIC_KEYS`; runs without a ``config.yaml`` are
    grouped by :func:`experiment_name`. The label is the name, or, when runs of
    one name have different settings, the name with the differing
    ``key=value`` pairs (or the run directory's name when many keys differ).
    Two runs of one group with the same seed give a :class:`DuplicateSeedWarning`.
    """
    keyed: dict[tuple[str, Any], list[tuple[Path, Any]]] = {}
    for run in runs:
        config = read_config(run)  # once per run: name, settings and seed come from it
        key = (experiment_name(run, config), experiment_settings(config))
        keyed.setdefault(key, []).append((run, (config or {}).get("seed")))
    keys = list(keyed)
    labels = _labels(keys, [keyed[key][0][0] for key in keys])
    groups = {}
    for label, key in zip(labels, keys, strict=True):
        members = [run for run, _ in keyed[key]]
        seeds = [seed for _, seed in keyed[key]]
        _warn_duplicate_seeds(label, members, seeds)
        groups[label] = members
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
