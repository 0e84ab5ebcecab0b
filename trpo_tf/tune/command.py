"""The ``trpo-tf tune`` subcommand: its arguments, checks and report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from trpo_tf.errors import ConfigError

SPACE_SUFFIX = ".space.yaml"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``tune`` on the ``trpo-tf`` subcommands."""
    tune = sub.add_parser(
        "tune", help="search hyperparameters with Optuna (each trial a training run)"
    )
    tune.add_argument("experiment", help="the experiment YAML every trial starts from")
    tune.add_argument(
        "--space",
        help=f"search space YAML (default: the experiment's name with {SPACE_SUFFIX} next to it)",
    )
    tune.add_argument("--trials", type=int, default=20, help="trials in the study (default 20)")
    tune.add_argument("--parallel", type=int, default=1, help="trials trained at a time")
    tune.add_argument(
        "--run-dir",
        help="the study directory (default runs/tune-NAME-TIME); rerun to resume a study",
    )
    seeds = tune.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed", type=int, default=0, help="the training seed of every trial (default 0)"
    )
    seeds.add_argument(
        "--seeds",
        type=parse_seeds,
        help="train every trial on these seeds side by side (0-2 or 0,3,5); its value is "
        "their --objective",
    )
    tune.add_argument(
        "--objective",
        choices=("mean", "worst"),
        default="mean",
        help="with several seeds: a trial's value is the mean (default) or the worst of "
        "their final returns",
    )
    tune.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override applied to every trial (e.g. trainer.total_steps=200000); repeatable",
    )
    tune.add_argument("--no-prune", action="store_true", help="train every trial to the end")
    tune.add_argument(
        "--prune-after",
        type=float,
        default=0.5,
        metavar="FRACTION",
        help="no trial is pruned before this fraction of its trainer.total_steps (default "
        "0.5); after it, a trial below the median of the complete trials at the same env "
        "step is stopped",
    )
    tune.set_defaults(func=run_command)
    return tune


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0-2`` or ``0,3,5`` (or a mix) -> the seeds, each once, in order."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            seeds.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds: {text!r} is not a list of seeds like 0-2 or 0,3,5"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds: {text!r} names no seed (e.g. 0-2)")
    return tuple(dict.fromkeys(seeds))


def default_space(experiment: Path) -> Path:
    name = experiment.name.removesuffix(".yaml").removesuffix(".yml")
    return experiment.with_name(name + SPACE_SUFFIX)


def run_command(args: argparse.Namespace) -> int:
    from trpo_tf.config import load_experiment
    from trpo_tf.tune.space import check_space, load_space
    from trpo_tf.tune.study import TuneSettings, run_study

    experiment = Path(args.experiment)
    if args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if args.parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {args.parallel}")
    if not 0.0 <= args.prune_after < 1.0:
        raise ConfigError(
            f"--prune-after must be a fraction of the budget in [0, 1), got {args.prune_after}"
        )
    overrides = tuple(args.set or [])
    config = load_experiment(experiment, list(overrides))  # fails early on a bad experiment
    space_file = Path(args.space) if args.space else default_space(experiment)
    if not space_file.is_file():
        raise ConfigError(
            f"no search space: {space_file} does not exist; write one (e.g. "
            "'trainer.max_kl: {loguniform: [0.005, 0.1]}') or pass --space FILE"
        )
    space = load_space(space_file)
    check_space(experiment, overrides, space)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = Path(args.run_dir) if args.run_dir else Path("runs") / f"tune-{config.name}-{stamp}"
    settings = TuneSettings(
        experiment=experiment,
        overrides=overrides,
        space=space,
        directory=directory,
        trials=args.trials,
        parallel=args.parallel,
        seeds=args.seeds or (args.seed,),
        objective=args.objective,
        prune=not args.no_prune,
        prune_after=args.prune_after,
    )
    study = run_study(settings)
    print((directory / "trials.md").read_text())
    if (directory / "best.yaml").is_file():
        print(
            f"best: trial {study.best_trial.number}, final eval {study.best_value:.2f}; "
            f"settings in {directory / 'best.yaml'} (train it: trpo-tf train "
            f"{directory / 'best.yaml'})"
        )
    print(f"study directory {directory}")
    return 0
