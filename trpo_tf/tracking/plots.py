"""Learning-curve PNGs (matplotlib, Agg canvas: no display needed).

* :func:`plot_learning_curve`: one run, training return vs env steps with the
  deterministic eval returns as markers; written to ``RUN_DIR/learning_curve.png``
  at the end of every run.
* :func:`plot_comparison`: several runs grouped into experiments by their
  ``config.yaml`` name; per experiment the mean across seeds and its spread
  (±1 std, and min–max lighter) on a common env-steps grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf.outputs import check_output_file
from trpo_tf.tracking.compare import expand_runs, group_by_experiment, read_metrics
from trpo_tf.tracking.safe import QuietOnFailure

LEARNING_CURVE = "learning_curve.png"
_GRID_POINTS = 200


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def image_suffixes() -> tuple[str, ...]:
    """The file extensions matplotlib can write (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return tuple(f".{ext}" for ext in sorted(FigureCanvasAgg.get_supported_filetypes()))


def check_image_path(out: str | Path, option: str = "--out") -> Path:
    """``out`` is a writable image path with an extension matplotlib supports.

    Raises:
        OutputPathError: ``out`` is a directory, lies under a file, or has an
            unsupported extension (the message lists the supported ones).
    """
    suffixes = image_suffixes()
    preferred = (".png", *(s for s in suffixes if s != ".png"))
    return check_output_file(out, option, preferred)


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _style(axes: Any, title: str) -> None:
    axes.set_xlabel("env steps")
    axes.set_ylabel("episode return")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="best", fontsize="small")


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Training return (mean of the last 100 episodes) and eval returns vs env steps.

    Args:
        run_dir: a run directory with ``metrics.csv``.
        out: the PNG to write (default ``RUN_DIR/learning_curve.png``).

    Returns:
        The PNG's path.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / LEARNING_CURVE
    metrics = read_metrics(run_dir)
    empty = np.zeros(0)
    steps = metrics.get("env_steps", empty)
    figure = _figure()
    axes = figure.add_subplot()
    x, y = _finite(steps, metrics.get("episode_return_mean", empty))
    if x.size:
        axes.plot(x, y, color="C0", label="train return (last 100 episodes)")
    x, y = _finite(steps, metrics.get("eval_return", empty))
    if x.size:
        _, std = _finite(steps, metrics.get("eval_return_std", np.full(steps.shape, np.nan)))
        yerr = std if std.size == y.size else None
        axes.errorbar(
            x, y, yerr=yerr, fmt="o", color="C1", markersize=5, capsize=3, label="eval return"
        )
    _style(axes, run_dir.name)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(figure, out)


def _mean_and_spread(
    curves: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Curves interpolated onto the env-steps range all seeds cover: ``[seeds, grid]``."""
    curves = [(x, y) for x, y in curves if x.size]
    if not curves:
        return None
    start = max(float(x[0]) for x, _ in curves)
    stop = min(float(x[-1]) for x, _ in curves)
    # Without overlap (or one point per seed) the only common point is the end.
    grid = np.linspace(start, stop, _GRID_POINTS) if stop > start else np.array([stop])
    values = np.stack([np.interp(grid, x, y) for x, y in curves])
    return grid, values.mean(axis=0), values


def plot_comparison(run_dirs: list[str | Path], out_png: str | Path) -> Path:
    """Mean and spread across seeds per experiment, all experiments in one PNG.

    Args:
        run_dirs: run directories, or parents of ``seed_*`` runs.
        out_png: the image to write (PNG, or another extension matplotlib supports).

    Returns:
        The image's path.

    Raises:
        OutputPathError: ``out_png`` is a directory, under a file, or not an image name.
        RunDirError: a path in ``run_dirs`` holds no runs.
    """
    out = check_image_path(out_png)
    groups = group_by_experiment(expand_runs(list(run_dirs)))
    figure = _figure(8.0, 4.8)
    axes = figure.add_subplot()
    for index, (name, runs) in enumerate(groups.items()):
        color = f"C{index % 10}"
        train_curves, eval_points = [], []
        for run in runs:
            metrics = read_metrics(run)
            steps = metrics.get("env_steps", np.zeros(0))
            x, y = _finite(steps, metrics.get("episode_return_mean", np.zeros(0)))
            order = np.argsort(x, kind="stable")
            train_curves.append((x[order], y[order]))
            eval_points.append(_finite(steps, metrics.get("eval_return", np.zeros(0))))
        label = f"{name} ({len(runs)} seed{'s' if len(runs) != 1 else ''})"
        curve = _mean_and_spread(train_curves)
        if curve is not None:
            grid, mean, values = curve
            axes.plot(grid, mean, color=color, label=label)
            if len(values) > 1:
                std = values.std(axis=0)
                axes.fill_between(grid, mean - std, mean + std, color=color, alpha=0.25)
                axes.fill_between(
                    grid, values.min(axis=0), values.max(axis=0), color=color, alpha=0.1
                )
            label = None
        evals = _mean_and_spread([(x, y) for x, y in eval_points if x.size > 1])
        if evals is None and any(x.size for x, _ in eval_points):
            xs = np.concatenate([x for x, _ in eval_points])
            ys = np.concatenate([y for _, y in eval_points])
            axes.plot(xs, ys, "o", color=color, markersize=4, label=label)
        elif evals is not None:
            grid, mean, values = evals
            marks = np.unique(np.concatenate([x for x, _ in eval_points if x.size > 1]))
            marks = marks[(marks >= grid[0]) & (marks <= grid[-1])]
            axes.errorbar(
                marks,
                np.interp(marks, grid, mean),
                yerr=np.interp(marks, grid, values.std(axis=0)),
                fmt="o",
                color=color,
                markersize=4,
                capsize=2,
                label=label,
            )
    _style(axes, "mean across seeds (band: ±1 std, light: min–max); markers: eval")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    return _save(figure, out)


class CurvePlotTracker:
    """Writes ``RUN_DIR/learning_curve.png`` when the run finishes."""

    def __init__(self) -> None:
        self.guard = QuietOnFailure("learning-curve plot")

    def log(self, row: Mapping[str, Any], step: int) -> None:
        """Nothing to do per iteration: the curve is drawn from ``metrics.csv``."""

    def finish(self, summary: Mapping[str, Any], run_dir: Any) -> None:
        self.guard.call(plot_learning_curve, run_dir)


def _save(figure, out: Path) -> Path:
    """Write the figure atomically, in the format its extension names."""
    from trpo_tf import atomic

    fmt = out.suffix[1:].lower() or "png"
    return atomic.write_file(out, lambda tmp: figure.savefig(tmp, format=fmt), "plot")
