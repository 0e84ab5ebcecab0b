"""Pruning a ``trpo-tf tune`` trial on its periodic evaluations.

A trial reports each evaluation at its env-step count. Trials whose batch shapes differ
(``env.n_envs`` or ``trainer.steps_per_iteration`` searched) evaluate at different
env-step counts, so a rule that compares only evaluations at the *same* step compares a
trial with whichever few trials happen to share that step, or with none.
:class:`BudgetMedianPruner` compares instead with every complete trial's latest
evaluation at or before the same env-step count, and never before ``warmup`` of the
trial's own ``trainer.total_steps``: a return curve early in training says little about
where it ends.
"""

from __future__ import annotations

import csv
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

POLL_S = 0.5
TOTAL_STEPS_ATTR = "total_steps"
"""The trial's ``trainer.total_steps``, kept as a user attribute for the pruner."""


def value_at(intermediate: Mapping[int, float], step: int) -> float | None:
    """The latest of ``intermediate`` (env step -> return) at or before ``step``."""
    earlier = [s for s in intermediate if s <= step]
    return intermediate[max(earlier)] if earlier else None


def below_median(
    value: float, step: int, others: Sequence[Mapping[int, float]], min_others: int
) -> bool:
    """True if ``value`` at ``step`` is below the median of ``others`` there.

    Each of ``others`` counts with its latest value at or before ``step``
    (:func:`value_at`); fewer than ``min_others`` such values never prune.
    """
    there = [v for curve in others if (v := value_at(curve, step)) is not None]
    return len(there) >= min_others and value < statistics.median(there)


class BudgetMedianPruner:
    """Optuna pruner: stop a trial below the median of the complete trials so far.

    Attributes:
        warmup: no trial is pruned before this fraction of its ``trainer.total_steps``.
        startup_trials: complete trials (with an evaluation by the step) needed to prune.
    """

    def __init__(self, warmup: float = 0.5, startup_trials: int = 3) -> None:
        self.warmup = warmup
        self.startup_trials = startup_trials

    def prune(self, study: Any, trial: Any) -> bool:
        import optuna

        step = trial.last_step
        total = trial.user_attrs.get(TOTAL_STEPS_ATTR)
        if step is None or (total is not None and step < self.warmup * total):
            return False
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        others = [t.intermediate_values for t in complete if t.number != trial.number]
        value = trial.intermediate_values[step]
        return below_median(value, step, others, self.startup_trials)


def follow(
    processes: Sequence[subprocess.Popen],
    metrics: Sequence[Path],
    trial: Any,
    aggregate: Callable[[Sequence[float]], float] = statistics.fmean,
) -> bool:
    """Report each evaluation to ``trial`` while ``processes`` train; True if pruned.

    An evaluation step is reported once every run has reached it, as the ``aggregate``
    of the runs' returns there (the trial's objective, applied to intermediate values).
    A pruned trial's processes get SIGTERM (they checkpoint and exit).
    """
    reported: set[int] = set()
    while True:
        finished = all(process.poll() is not None for process in processes)
        per_run = [dict(evaluations(path)) for path in metrics]
        common = set(per_run[0]).intersection(*per_run[1:])
        for step in sorted(common - reported):
            reported.add(step)
            trial.report(aggregate([run[step] for run in per_run]), step)
            if trial.should_prune() and not finished:
                for process in processes:
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
                return True
        if finished:
            return False
        time.sleep(POLL_S)


def evaluations(metrics: Path) -> list[tuple[int, float]]:
    """``(env_steps, eval_return)`` of every evaluation row in ``metrics`` so far."""
    try:
        with open(metrics, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return []
    found = []
    for row in rows:
        try:
            found.append((int(row["env_steps"]), float(row["eval_return"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found
