"""``trpo-tf train``: one run, a resumed run, or several seeds (``--seeds``).

Everything that can fail without TensorFlow (the options, the config, optional
packages, one env made and read, the run directory) is checked first; TensorFlow is
imported only then, without its C++ start-up log.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from trpo_tf.errors import RunDirError

if TYPE_CHECKING:
    from trpo_tf.config import ExperimentConfig


def _default_run_dir(name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-s{seed}-{stamp}"


def _train_seeds(args: argparse.Namespace, experiment: Path | None, overrides: list[str]) -> int:
    """``train --seeds``: every seed into PARENT/seed_N, then a table and a plot."""
    from trpo_tf.config import load_experiment
    from trpo_tf.errors import ConfigError
    from trpo_tf.tracking import seeds as multi_seed
    from trpo_tf.tracking.run_dir import check_run_dir_path

    if args.resume:
        raise ConfigError(
            "--seeds starts new runs and cannot be combined with --resume; resume each "
            "seed's run directory on its own: trpo-tf train --resume PARENT/seed_N"
        )
    if experiment is None:
        raise ConfigError("train --seeds needs an EXPERIMENT to train the seeds of")
    if args.seed is not None:
        raise ConfigError("--seed and --seeds exclude each other; pass one of them")
    parallel = 1 if args.parallel is None else args.parallel
    if parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {parallel}")
    seeds = multi_seed.parse_seeds(args.seeds)
    config = load_experiment(experiment, overrides)  # fail early, before any seed runs
    check_before_tensorflow(config)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(args.run_dir) if args.run_dir else Path("runs") / f"{config.name}-seeds-{stamp}"
    check_run_dir_path(parent)
    multi_seed.check_free(parent, seeds)
    if parallel > 1:
        status = multi_seed.train_parallel(
            experiment,
            overrides,
            seeds,
            parent,
            parallel,
            args.log_every,
            steps_per_seed=_budget(config),
            quiet=args.quiet,
        )
    else:
        import_tensorflow()
        status = multi_seed.train_sequential(
            experiment, overrides, seeds, parent, args.quiet, args.log_every
        )
    finished = [s for s in seeds if (multi_seed.seed_dir(parent, s) / "summary.json").exists()]
    if finished:
        from trpo_tf.tracking.compare import format_summary_table, summarize
        from trpo_tf.tracking.plots import plot_comparison

        runs = [multi_seed.seed_dir(parent, s) for s in finished]
        print(format_summary_table(summarize(runs)))
        print(f"learning curves: {plot_comparison(runs, parent / 'learning_curve.png')}")
    print(f"run directory {parent}")
    return status


def _check_train_args(args: argparse.Namespace) -> None:
    """Options that would otherwise be ignored, or make no sense together, are errors."""
    from trpo_tf.errors import ConfigError

    if args.log_every < 1:
        raise ConfigError(
            f"--log-every must be >= 1 (iterations between progress lines), got {args.log_every}; "
            "pass --quiet for no progress output"
        )
    if args.parallel is not None and args.seeds is None:
        raise ConfigError(
            "--parallel runs several seeds at a time and needs --seeds "
            "(e.g. --seeds 0-4 --parallel 2); drop --parallel for a single run"
        )
    if not args.resume or args.seeds is not None:
        return
    if args.experiment is not None:
        raise ConfigError(
            f"--resume continues {args.resume} with its own config.yaml, so {args.experiment} "
            "would be ignored; drop it (change resumable keys with --set), or train it as a "
            "new run without --resume"
        )
    if args.run_dir is not None and Path(args.run_dir).resolve() != Path(args.resume).resolve():
        raise ConfigError(
            f"--resume writes into the run directory it continues ({args.resume}), not "
            f"--run-dir {args.run_dir}; drop --run-dir"
        )


def _budget(config) -> int:
    """Env steps one run of ``config`` trains: whole iterations of the per-env batch."""
    batch = (config.trainer.steps_per_iteration // config.env.n_envs) * config.env.n_envs
    return (config.trainer.total_steps // batch) * batch if batch else 0


def check_before_tensorflow(config: ExperimentConfig) -> None:
    """What can fail without TensorFlow: optional packages, then one env made and read.

    A plug-in env that imports TensorFlow does so without its start-up log.
    """
    from trpo_tf import extras
    from trpo_tf.envs import describe, make_env_fn
    from trpo_tf.tf_runtime import quiet_start

    extras.check_experiment(config)
    with quiet_start():
        # A plug-in env first through the check that names its package and entry point.
        from trpo_tf.plugin_env_checks import check_env

        check_env(config)
        env_fn = make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
        describe(config.env.id, env_fn)


def import_tensorflow() -> None:
    """TensorFlow imported without its C++ start-up log (:mod:`trpo_tf.tf_runtime`)."""
    from trpo_tf.tf_runtime import import_tensorflow_quietly

    import_tensorflow_quietly()


def cmd_train(args: argparse.Namespace) -> int:
    """``trpo-tf train``: a new run, ``--resume`` of one, or ``--seeds`` (exit status)."""
    from trpo_tf.config import load_experiment
    from trpo_tf.tracking.run_dir import check_new_run_dir, check_run_dir_path

    _check_train_args(args)
    overrides = list(args.set or [])
    if args.wandb:
        overrides.append("tracking.wandb.enabled=true")
    experiment = None
    if args.experiment is not None:
        from trpo_tf.catalog import experiment_for

        chosen = experiment_for(args.experiment)
        experiment = chosen.path
        overrides = [*chosen.overrides, *overrides]  # the user's --set come last and win
        if chosen.note:
            print(f"trpo-tf: {chosen.note}", file=sys.stderr)
    if args.seeds is not None:
        return _train_seeds(args, experiment, overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.resume:
        from trpo_tf.resume import check_run_to_resume, resume_checkpoint

        # The run's own resolved config; --set may change what a resume allows (e.g.
        # extend trainer.total_steps). Checked before TensorFlow loads or anything is written.
        from trpo_tf.run.lock import check_not_in_use

        run_dir = Path(args.resume)
        check_not_in_use(run_dir)
        check_run_to_resume(run_dir)
        config = load_experiment(run_dir / "config.yaml", overrides)
        resume_checkpoint(run_dir, config)
    else:
        if experiment is None:
            raise RunDirError(
                "train needs an EXPERIMENT (a shipped name such as cartpole, or a YAML path; "
                "trpo-tf experiments lists them), or --resume RUN_DIR"
            )
        config = load_experiment(experiment, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(config.name, config.seed)
        check_run_dir_path(run_dir)
        check_new_run_dir(run_dir)
    check_before_tensorflow(config)
    # TensorFlow loads only once the config, its packages and its env are known good.
    import_tensorflow()
    from trpo_tf.train import train

    result = train(
        config,
        run_dir,
        quiet=args.quiet,
        progress_every=args.log_every,
        resume=bool(args.resume),
    )
    print(
        f"done: {result.env_steps:,d} env steps in {result.wall_time_s:.1f} s "
        f"({result.steps_per_s:,.0f} steps/s); eval return {result.final_eval_return:.2f} "
        f"± {result.final_eval_return_std:.2f} over {result.eval_episodes} episodes; "
        f"run directory {result.run_dir}"
        + (f"; export skipped: {result.export_skipped}" if result.export_skipped else "")
    )
    return 0
