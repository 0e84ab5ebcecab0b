"""``check_tracker``: a tracker factory against the Tracker contract."""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Steps of the rows log() receives: iteration i ends at env_steps = 512 · (i + 1).
_STEPS_PER_ITERATION = 512


def _metrics_row(iteration: int) -> dict[str, Any]:
    """A ``metrics.csv`` row as the training loop passes it: ints, floats, a bool, and
    ``eval_return``/``eval_return_std`` on evaluation rows only."""
    row: dict[str, Any] = {
        "iteration": iteration,
        "env_steps": _STEPS_PER_ITERATION * (iteration + 1),
        "wall_time_s": 1.25 * (iteration + 1),
        "fps": 409.6,
        "episode_return_mean": -1200.0 + 10.0 * iteration,
        "episode_length_mean": 200.0,
        "episodes": 2,
        "kl": 0.0087,
        "surrogate_improvement": 0.012,
        "line_search_steps": 1,
        "line_search_accepted": iteration != 1,  # a rejected step looks like this
        "skip_reason": 0,
        "grad_norm": 0.31,
        "entropy": 1.42,
        "policy_std": 0.98,
        "value_loss": 812.5,
        "explained_variance": float("nan") if iteration == 0 else 0.12,
        "rollout_time_s": 0.9,
        "update_time_s": 0.02,
        "nonfinite_replaced": 0,
    }
    if iteration % 2 == 1:
        row.update(eval_return=-1150.0, eval_return_std=35.5)
    return row


def _summary(iterations: int) -> dict[str, Any]:
    """What ``summary.json`` holds at the end of a run."""
    env_steps = _STEPS_PER_ITERATION * iterations
    return {
        "env_steps": env_steps,
        "wall_time_s": 4.2,
        "steps_per_s": round(env_steps / 4.2, 1),
        "final_eval_return": -1100.0,
        "final_eval_return_std": 30.0,
        "eval_episodes": 10,
        "iterations": iterations,
        "update_retraces": 0,
        "update_devices": ["CPU:0"],
    }


def _default_experiment() -> dict[str, Any]:
    from trpo_tf.config.loader import to_dict
    from trpo_tf.config.schema import ExperimentConfig

    return to_dict(ExperimentConfig())


def _call(context: str, what: str, function: Callable[..., Any], *args: Any) -> None:
    try:
        function(*args)
    except Exception as error:
        raise AssertionError(
            f"{context}: {what} raised {type(error).__name__}: {error} (trpo_tf warns once "
            "and switches a tracker off at its first exception)"
        ) from error


def check_tracker(
    factory: Callable[..., Any],
    *,
    run_dir: str | Path | None = None,
    experiment: Mapping[str, Any] | None = None,
    iterations: int = 3,
    **kwargs: Any,
) -> Any:
    """Checks a ``trpo_tf.trackers`` factory against the Tracker contract.

    Calls the factory as ``tracking.plugins: {name: kwargs}`` does, with keyword
    arguments only: ``factory(run_dir=Path, experiment=dict, **kwargs)``. Then checks:

    * the result has callable ``log`` and ``finish``;
    * ``log(row, step)`` accepts ``iterations`` metrics rows (``step`` = env steps; ints,
      floats including a NaN, a bool; evaluation columns on every other row);
    * ``finish(summary, run_dir)`` accepts the ``summary.json`` contents and the run
      directory.

    Args:
        factory: the entry-point object.
        run_dir: the run directory given to the factory and ``finish``; a temporary
            directory (removed afterwards) when None. Pass one to inspect what the
            tracker wrote.
        experiment: the resolved experiment as plain data; the defaults when None.
        iterations: metrics rows to log.
        **kwargs: passed to the factory (the YAML mapping under the tracker's name).

    Returns:
        The tracker that was checked (finished).

    Raises:
        AssertionError: a check failed; the message names the check.
    """
    name = getattr(factory, "__qualname__", None) or repr(factory)
    context = f"check_tracker({name})"
    experiment = dict(_default_experiment() if experiment is None else experiment)
    if run_dir is not None:
        return _check(context, factory, Path(run_dir), experiment, iterations, kwargs)
    with tempfile.TemporaryDirectory(prefix="trpo_tf_check_tracker_") as directory:
        return _check(context, factory, Path(directory), experiment, iterations, kwargs)


def _check(
    context: str,
    factory: Callable[..., Any],
    run_dir: Path,
    experiment: dict[str, Any],
    iterations: int,
    kwargs: Mapping[str, Any],
) -> Any:
    try:
        tracker = factory(run_dir=run_dir, experiment=experiment, **kwargs)
    except TypeError as error:
        raise AssertionError(
            f"{context}: factory(run_dir=..., experiment=..., **{dict(kwargs)}) raised "
            f"TypeError: {error}; trpo_tf passes run_dir and experiment by keyword, so the "
            "factory must have parameters with exactly those names, and the YAML keys as "
            "keyword parameters"
        ) from error
    except Exception as error:
        raise AssertionError(
            f"{context}: factory(run_dir=..., experiment=..., **{dict(kwargs)}) raised "
            f"{type(error).__name__}: {error}"
        ) from error
    if inspect.isclass(tracker):
        raise AssertionError(
            f"{context}: returned the class {tracker.__name__}, not an instance; return "
            f"{tracker.__name__}(...)"
        )
    missing = [m for m in ("log", "finish") if not callable(getattr(tracker, m, None))]
    if missing:
        raise AssertionError(
            f"{context}: returned {type(tracker).__name__} without "
            f"{', '.join(m + '()' for m in missing)}; a Tracker has log(row, step) and "
            "finish(summary, run_dir)"
        )
    for iteration in range(iterations):
        row = _metrics_row(iteration)
        _call(context, f"log(row, step={row['env_steps']})", tracker.log, row, row["env_steps"])
    _call(context, "finish(summary, run_dir)", tracker.finish, _summary(iterations), run_dir)
    return tracker
