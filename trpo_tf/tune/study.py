"""``trpo-tf tune``: an Optuna study whose trials are ordinary training runs.

::

    TUNE_DIR/
      study.db            the Optuna study (SQLite): rerunning the command resumes it
      trials/trial_0007/  each trial a normal run directory (trpo-tf train --run-dir)
      trials.md           every trial: state, value, parameters, run directory
      best.yaml           the experiment with the best trial's settings, ready to train
      importance.png      parameter importances (fANOVA), once two trials are complete

Each trial trains in a subprocess of its own (``--parallel`` at a time), so trials
share no TensorFlow state and a crash ends only its trial. The objective is the
final deterministic evaluation return (``summary.json``); every periodic
evaluation is reported to Optuna as it lands in ``metrics.csv``, and a trial the
pruner stops (median rule) is ended with SIGTERM and marked pruned. The study
directory is locked like a run directory; trials still marked running when a
previous tune process died are marked failed when it resumes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trpo_tf import atomic
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.tune.space import Dimension, override

STUDY_FILE = "study.db"
POLL_S = 0.5


class TrialFailed(TrpoTfError):
    """A trial's training run exited with an error (its stderr tail is in the message)."""


@dataclass(frozen=True)
class TuneSettings:
    """What ``trpo-tf tune`` was asked for.

    Attributes:
        experiment: the experiment every trial starts from.
        overrides: ``--set`` values applied to every trial, before the searched ones.
        space: the searched keys.
        directory: the study directory.
        trials: complete trials wanted in the study (resuming counts earlier ones).
        parallel: trials trained at a time.
        seed: the seed of every trial's training run (tuning seeds are 0-9).
        sampler_seed: the seed of Optuna's sampler.
        prune: stop trials whose evaluations fall below the median of earlier ones.
    """

    experiment: Path
    overrides: tuple[str, ...]
    space: tuple[Dimension, ...]
    directory: Path
    trials: int
    parallel: int = 1
    seed: int = 0
    sampler_seed: int = 0
    prune: bool = True


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError('trpo-tf tune needs Optuna: pip install "trpo_tf[tune]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(settings: TuneSettings) -> Any:
    """The study in ``settings.directory`` (created, or loaded to resume)."""
    optuna = _optuna()
    settings.directory.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        storage=f"sqlite:///{settings.directory.resolve() / STUDY_FILE}",
        study_name="trpo-tf",
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=settings.sampler_seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        if settings.prune
        else optuna.pruners.NopPruner(),
    )
    stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in stale:  # left by a tune process that died: this one holds the lock
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def run_study(settings: TuneSettings, progress: Any = print) -> Any:
    """Run trials until the study holds ``settings.trials`` finished ones.

    Finished means complete, pruned or failed (a failed trial's error is in
    ``trials.md`` and its run directory); trials of earlier calls count.

    Returns:
        The study.
    """
    from trpo_tf.run.lock import locked

    optuna = _optuna()
    with locked(settings.directory, "trpo-tf tune"):
        study = open_study(settings)
        states = optuna.trial.TrialState
        finished = (states.COMPLETE, states.PRUNED, states.FAIL)
        done = sum(t.state in finished for t in study.trials)
        remaining = max(0, settings.trials - done)
        if remaining:
            progress(f"tune: {done} trials done, running {remaining} more in {settings.directory}")
            study.optimize(
                lambda trial: _objective(trial, settings, progress),
                n_trials=remaining,
                n_jobs=settings.parallel,
                catch=(TrialFailed,),
            )
        write_reports(study, settings)
    return study


def trial_dir(settings: TuneSettings, number: int) -> Path:
    return settings.directory / "trials" / f"trial_{number:04d}"


def _objective(trial: Any, settings: TuneSettings, progress: Any) -> float:
    optuna = _optuna()
    values = {d.key: d.suggest(trial) for d in settings.space}
    run_dir = trial_dir(settings, trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    command = [sys.executable, "-m", "trpo_tf.cli", "train", str(settings.experiment)]
    command += ["--run-dir", str(run_dir), "--seed", str(settings.seed), "--quiet"]
    for item in [*settings.overrides, *(override(k, v) for k, v in values.items())]:
        command += ["--set", item]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    pruned = _follow(process, run_dir / "metrics.csv", trial)
    _, err = process.communicate()
    if pruned:
        progress(f"tune: trial {trial.number} pruned ({_show(values)})")
        raise optuna.TrialPruned()
    if process.returncode != 0:
        tail = " | ".join(line for line in err.splitlines()[-3:] if line.strip())
        progress(f"tune: trial {trial.number} failed (exit {process.returncode}): {tail}")
        raise TrialFailed(f"trial {trial.number} exited {process.returncode}: {tail}")
    value = json.loads((run_dir / "summary.json").read_text())["final_eval_return"]
    if value is None:
        raise TrialFailed(f"trial {trial.number} has no final evaluation return")
    progress(f"tune: trial {trial.number} = {value:.2f} ({_show(values)})")
    return float(value)


def _follow(process: subprocess.Popen, metrics: Path, trial: Any) -> bool:
    """Report each evaluation row to ``trial`` while ``process`` trains; True if pruned."""
    reported: set[int] = set()
    while True:
        finished = process.poll() is not None
        for step, value in evaluations(metrics):
            if step in reported:
                continue
            reported.add(step)
            trial.report(value, step)
            if trial.should_prune() and not finished:
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


def _show(values: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def best_overrides(study: Any, space: Sequence[Dimension]) -> list[str]:
    """``--set`` values of the best complete trial."""
    by_key = {d.key: d for d in space}
    params = study.best_trial.params
    return [override(key, by_key[key].value_of(params[key])) for key in by_key if key in params]


def write_reports(study: Any, settings: TuneSettings) -> None:
    """``trials.md``, ``best.yaml`` and ``importance.png`` of the study so far."""
    optuna = _optuna()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    atomic.write_text(settings.directory / "trials.md", trial_table(study, settings), "tune")
    if not complete:
        return
    from trpo_tf.config import dump_experiment, load_experiment

    best = load_experiment(
        settings.experiment, [*settings.overrides, *best_overrides(study, settings.space)]
    )
    atomic.write_file(
        settings.directory / "best.yaml", lambda tmp: dump_experiment(best, tmp), "tune"
    )
    if len(complete) >= 2:
        _importance_plot(study, settings.directory / "importance.png")


def trial_table(study: Any, settings: TuneSettings) -> str:
    """A Markdown table of every trial, best first, then by number."""
    keys = [d.key for d in settings.space]
    by_key = {d.key: d for d in settings.space}
    lines = [
        f"# Study {settings.directory}",
        "",
        f"Experiment `{settings.experiment}`, seed {settings.seed}, objective: final "
        "deterministic evaluation return (higher is better).",
        "",
        "| trial | state | final eval | " + " | ".join(f"`{k}`" for k in keys) + " | run |",
        "|---|---|---|" + "---|" * len(keys) + "---|",
    ]

    def order(trial: Any) -> tuple[float, int]:
        value = trial.value if trial.value is not None else float("-inf")
        return (-value, trial.number)

    for trial in sorted(study.trials, key=order):
        value = f"{trial.value:.2f}" if trial.value is not None else ""
        params = [
            str(by_key[k].value_of(trial.params[k])) if k in trial.params else "" for k in keys
        ]
        run = Path(trial.user_attrs.get("run_dir", "")).name
        lines.append(
            f"| {trial.number} | {trial.state.name.lower()} | {value} | "
            + " | ".join(params)
            + f" | {run} |"
        )
    return "\n".join(lines) + "\n"


def _importance_plot(study: Any, out: Path) -> None:
    optuna = _optuna()
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):  # too few distinct trials
        return
    if not importances:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    figure, axes = plt.subplots(figsize=(6, 0.5 + 0.4 * len(names)))
    axes.barh(names, [importances[n] for n in names], color="C0")
    axes.set_xlabel("importance (fANOVA) for the final evaluation return")
    figure.tight_layout()
    atomic.write_file(out, lambda tmp: figure.savefig(tmp, format="png"), "tune")
    plt.close(figure)
