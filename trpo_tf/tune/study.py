"""``trpo-tf tune``: an Optuna study whose trials are ordinary training runs.

::

    TUNE_DIR/
      study.db            the Optuna study (SQLite): rerunning the command resumes it
      experiment.yaml     the experiment with the --set values, as the study started:
                          every trial trains from this copy
      trials/trial_0007/  each trial a normal run directory (trpo-tf train --run-dir);
                          with several seeds, one per seed: trial_0007/seed_1/
      trials.md           every trial: state, value, parameters, run directory
      best.yaml           the experiment with the best trial's settings, ready to train
      importance.png      parameter importances (fANOVA), once two trials are complete

The three reports are written again after every trial, so a study stopped part way
(or one still running) has them up to its last finished trial.

Each trial trains in a subprocess of its own (``--parallel`` at a time), so trials
share no TensorFlow state and a crash ends only its trial. The objective is the
final deterministic evaluation return (``summary.json``); with several seeds
(``--seeds 0-2``) a trial trains one run per seed side by side and its objective is
their mean or their worst (``--objective``), so that a setting is chosen for how it
does across seeds rather than on one. Every periodic evaluation is reported to
Optuna as it lands in ``metrics.csv`` (with several seeds, once every seed has
reached it: the same aggregate). A trial whose evaluation falls below the median of
the complete trials' at the same env step, once it has trained ``--prune-after`` of
its budget (:mod:`trpo_tf.tune.pruning`), is ended with SIGTERM and marked pruned.
A study keeps its seeds, objective and experiment: a rerun that asks for other seeds
or another objective, or whose experiment file (with its ``--set`` values) no longer
resolves to the copy the study started from, is refused, since its trials would not
compare. The study directory is locked like a run directory; trials still marked
running when a previous tune process died are marked failed when it resumes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trpo_tf import atomic
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.tune.pruning import TOTAL_STEPS_ATTR, BudgetMedianPruner, follow
from trpo_tf.tune.space import Dimension, override

STUDY_FILE = "study.db"
EXPERIMENT_FILE = "experiment.yaml"
OBJECTIVES: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean,
    "worst": min,
}
"""How a trial's final returns over its seeds become its objective value."""


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
        parallel: trials trained at a time (each trains ``len(seeds)`` runs at once).
        seeds: the seeds every trial trains (tuning seeds are 0-9).
        objective: ``mean`` or ``worst`` of the seeds' final returns (:data:`OBJECTIVES`).
        sampler_seed: the seed of Optuna's sampler.
        prune: stop trials whose evaluations fall below the median of complete ones.
        prune_after: no trial is pruned before this fraction of its total_steps.
    """

    experiment: Path
    overrides: tuple[str, ...]
    space: tuple[Dimension, ...]
    directory: Path
    trials: int
    parallel: int = 1
    seeds: tuple[int, ...] = (0,)
    objective: str = "mean"
    sampler_seed: int = 0
    prune: bool = True
    prune_after: float = 0.5


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
        pruner=BudgetMedianPruner(warmup=settings.prune_after)
        if settings.prune
        else optuna.pruners.NopPruner(),
    )
    _keep_protocol(study, settings)
    _keep_experiment(settings)
    stale = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    for trial in stale:  # left by a tune process that died: this one holds the lock
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def _keep_protocol(study: Any, settings: TuneSettings) -> None:
    """Record the study's seeds and objective, or refuse a rerun that changes them."""
    asked = {"seeds": list(settings.seeds), "objective": settings.objective}
    kept = {key: study.user_attrs[key] for key in asked if key in study.user_attrs}
    if not kept and study.trials:  # a study from before seeds were recorded: one seed each
        return
    if kept and kept != asked:
        raise ConfigError(
            f"study {settings.directory} was run with seeds {kept.get('seeds')} and objective "
            f"{kept.get('objective')}; rerun with those (--seeds, --objective) or use a new "
            "--run-dir"
        )
    for key, value in asked.items():
        study.set_user_attr(key, value)


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
            reporting = threading.Lock()  # trials of --parallel finish in their own threads

            def report(study: Any, _trial: Any) -> None:
                # After every trial, so a study stopped part way keeps its reports.
                with reporting:
                    write_reports(study, settings)

            study.optimize(
                lambda trial: _objective(trial, settings, progress),
                n_trials=remaining,
                n_jobs=settings.parallel,
                catch=(TrialFailed,),
                callbacks=[report],
            )
        else:  # nothing to train: the reports of the study as it stands
            write_reports(study, settings)
    return study


def study_experiment(settings: TuneSettings) -> Path:
    """The study's own copy of its experiment (``--set`` values applied), trials' base."""
    return settings.directory / EXPERIMENT_FILE


def _keep_experiment(settings: TuneSettings) -> None:
    """Copy the resolved experiment into the study, or refuse one that has changed since."""
    from trpo_tf.config import dump_experiment, load_experiment, to_dict
    from trpo_tf.tracking.compare import flatten_settings

    asked = load_experiment(settings.experiment, settings.overrides)
    kept_path = study_experiment(settings)
    if not kept_path.is_file():
        atomic.write_file(kept_path, lambda tmp: dump_experiment(asked, tmp), "tune")
        return
    kept = load_experiment(kept_path)
    if kept == asked:
        return
    old, new = flatten_settings(to_dict(kept)), flatten_settings(to_dict(asked))
    key = next(k for k in [*old, *new] if old.get(k) != new.get(k))
    raise ConfigError(
        f"study {settings.directory} started from {key} = {old.get(key)}; "
        f"{settings.experiment} with these --set values now gives {new.get(key)}. "
        "Rerun with the experiment as it was (its copy is "
        f"{kept_path}: trpo-tf tune {kept_path} --run-dir {settings.directory}) or use a "
        "new --run-dir"
    )


def trial_dir(settings: TuneSettings, number: int) -> Path:
    return settings.directory / "trials" / f"trial_{number:04d}"


def seed_runs(settings: TuneSettings, number: int) -> dict[int, Path]:
    """Each seed's run directory of trial ``number`` (the trial's own with one seed)."""
    base = trial_dir(settings, number)
    if len(settings.seeds) == 1:
        return {settings.seeds[0]: base}
    return {seed: base / f"seed_{seed}" for seed in settings.seeds}


def _objective(trial: Any, settings: TuneSettings, progress: Any) -> float:
    optuna = _optuna()
    values = {d.key: d.suggest(trial) for d in settings.space}
    runs = seed_runs(settings, trial.number)
    trial.set_user_attr("run_dir", str(trial_dir(settings, trial.number)))
    sets = [override(k, v) for k, v in values.items()]  # --set values are in the copy
    experiment = study_experiment(settings)
    trial.set_user_attr(TOTAL_STEPS_ATTR, _total_steps(experiment, sets, trial.number))
    processes = [_train(experiment, seed, run_dir, sets) for seed, run_dir in runs.items()]
    aggregate = OBJECTIVES[settings.objective]
    metrics = [run_dir / "metrics.csv" for run_dir in runs.values()]
    pruned = follow(processes, metrics, trial, aggregate)
    errors = [process.communicate()[1] for process in processes]
    if pruned:
        progress(f"tune: trial {trial.number} pruned ({_show(values)})")
        raise optuna.TrialPruned()
    finals = []
    for seed, process, err in zip(runs, processes, errors, strict=True):
        if process.returncode != 0:
            tail = " | ".join(line for line in err.splitlines()[-3:] if line.strip())
            what = f"trial {trial.number}" + (f" seed {seed}" if len(runs) > 1 else "")
            progress(f"tune: {what} failed (exit {process.returncode}): {tail}")
            raise TrialFailed(f"{what} exited {process.returncode}: {tail}")
        final = json.loads((runs[seed] / "summary.json").read_text())["final_eval_return"]
        if final is None:
            raise TrialFailed(f"trial {trial.number} seed {seed} has no final evaluation return")
        finals.append(float(final))
    trial.set_user_attr("finals", finals)
    value = aggregate(finals)
    per_seed = f" from {', '.join(f'{v:.2f}' for v in finals)}" if len(finals) > 1 else ""
    progress(f"tune: trial {trial.number} = {value:.2f}{per_seed} ({_show(values)})")
    return float(value)


def _total_steps(experiment: Path, sets: list[str], number: int) -> int:
    """The trial's ``trainer.total_steps`` (the pruner's warm-up is a fraction of it)."""
    from trpo_tf.config import load_experiment

    try:
        return load_experiment(experiment, sets).trainer.total_steps
    except ConfigError as error:  # a sampled value the config refuses: this trial fails
        raise TrialFailed(f"trial {number}: {error}") from None


def _train(experiment: Path, seed: int, run_dir: Path, sets: list[str]) -> subprocess.Popen:
    """``trpo-tf train`` of one seed of a trial, in a subprocess."""
    command = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment)]
    command += ["--run-dir", str(run_dir), "--seed", str(seed), "--quiet"]
    for item in sets:
        command += ["--set", item]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _text(value: Any) -> str:
    """A searched value as the reports show it (floats to 4 significant digits)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _show(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in values.items())


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

    best = load_experiment(study_experiment(settings), best_overrides(study, settings.space))
    atomic.write_file(
        settings.directory / "best.yaml", lambda tmp: dump_experiment(best, tmp), "tune"
    )
    if len(complete) >= 2:
        _importance_plot(study, settings.directory / "importance.png")


def trial_table(study: Any, settings: TuneSettings) -> str:
    """A Markdown table of every trial, best first, then by number."""
    keys = [d.key for d in settings.space]
    by_key = {d.key: d for d in settings.space}
    several = len(settings.seeds) > 1
    lines = [
        f"# Study {settings.directory}",
        "",
        f"Experiment `{settings.experiment}`, {_seeds_text(settings)}, objective: "
        f"{_objective_text(settings)} (higher is better).",
        "",
        "| trial | state | final eval | "
        + ("per seed | " if several else "")
        + " | ".join(f"`{k}`" for k in keys)
        + " | run |",
        "|---|---|---|" + ("---|" if several else "") + "---|" * len(keys) + "---|",
    ]

    def order(trial: Any) -> tuple[float, int]:
        value = trial.value if trial.value is not None else float("-inf")
        return (-value, trial.number)

    for trial in sorted(study.trials, key=order):
        value = f"{trial.value:.2f}" if trial.value is not None else ""
        if value and trial.state.name == "PRUNED":
            value = f"({value})"
        params = [
            _text(by_key[k].value_of(trial.params[k])) if k in trial.params else "" for k in keys
        ]
        run = Path(trial.user_attrs.get("run_dir", "")).name
        finals = ", ".join(f"{v:.2f}" for v in trial.user_attrs.get("finals", []))
        lines.append(
            f"| {trial.number} | {trial.state.name.lower()} | {value} | "
            + (f"{finals} | " if several else "")
            + " | ".join(params)
            + f" | {run} |"
        )
    lines += [
        "",
        "A pruned trial's value, in parentheses, is its last evaluation before it was "
        "stopped. Every trial trained `experiment.yaml`, the study's copy of its experiment.",
    ]
    return "\n".join(lines) + "\n"


def _seeds_text(settings: TuneSettings) -> str:
    if len(settings.seeds) == 1:
        return f"seed {settings.seeds[0]}"
    return "seeds " + ", ".join(map(str, settings.seeds))


def _objective_text(settings: TuneSettings) -> str:
    final = "final deterministic evaluation return"
    if len(settings.seeds) == 1:
        return final
    return f"the {settings.objective} over the seeds of the {final}"


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
