"""``trpo-tf`` command line: train, eval, export, plot, summary, plugins.

User errors (bad config, unknown plug-in, missing run directory, NaN from an env)
print one line ``trpo-tf: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from trpo_tf.errors import RunDirError, TrpoTfError


def _default_run_dir(name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-s{seed}-{stamp}"


def _train_seeds(args: argparse.Namespace, overrides: list[str]) -> int:
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
    if args.experiment is None:
        raise ConfigError("train --seeds needs an EXPERIMENT.yaml to train the seeds of")
    if args.seed is not None:
        raise ConfigError("--seed and --seeds exclude each other; pass one of them")
    parallel = 1 if args.parallel is None else args.parallel
    if parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {parallel}")
    seeds = multi_seed.parse_seeds(args.seeds)
    config = load_experiment(args.experiment, overrides)  # fail early, before any seed runs
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(args.run_dir) if args.run_dir else Path("runs") / f"{config.name}-seeds-{stamp}"
    check_run_dir_path(parent)
    multi_seed.check_free(parent, seeds)
    if parallel > 1:
        status = multi_seed.train_parallel(
            args.experiment, overrides, seeds, parent, parallel, args.log_every
        )
    else:
        status = multi_seed.train_sequential(
            args.experiment, overrides, seeds, parent, args.quiet, args.log_every
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


def _cmd_train(args: argparse.Namespace) -> int:
    from trpo_tf.config import load_experiment
    from trpo_tf.tracking.run_dir import check_new_run_dir, check_run_dir_path

    _check_train_args(args)
    overrides = list(args.set or [])
    if args.wandb:
        overrides.append("tracking.wandb.enabled=true")
    if args.seeds is not None:
        return _train_seeds(args, overrides)
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
        if args.experiment is None:
            raise RunDirError("train needs an EXPERIMENT.yaml, or --resume RUN_DIR")
        config = load_experiment(args.experiment, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(config.name, config.seed)
        check_run_dir_path(run_dir)
        check_new_run_dir(run_dir)
    from trpo_tf.train import train  # TensorFlow loads only once the config is valid

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


EXPORT_EVAL_SEED = 12345
"""``eval EXPORT_DIR``'s default reset seed (an export is evaluated apart from its run)."""
EXPORT_EVAL_EPISODES = 10


def _check_eval_args(args: argparse.Namespace) -> None:
    """``eval`` options that gymnasium or numpy would reject with a traceback."""
    from trpo_tf.errors import ConfigError
    from trpo_tf.outputs import check_output_dir

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1 (episodes to evaluate), got {args.episodes}")
    if args.seed is not None and args.seed < 0:
        raise ConfigError(
            f"--seed must be >= 0 (gymnasium reset seeds are non-negative), got {args.seed}"
        )
    if args.video is not None:
        check_output_dir(_video_dir(args), "--video")


def _video_dir(args: argparse.Namespace) -> Path:
    return Path(args.video) if args.video else Path(args.path) / "videos"


def _cmd_eval(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    from trpo_tf.export import evaluate_export, is_export_dir
    from trpo_tf.run_loading import evaluate_run, run_eval_settings

    path = Path(args.path)
    if is_export_dir(path):
        episodes = EXPORT_EVAL_EPISODES if args.episodes is None else args.episodes
        seed = EXPORT_EVAL_SEED if args.seed is None else args.seed
        returns = evaluate_export(path, episodes=episodes, seed=seed)
    else:
        # The run's own evaluation (seed + 10,000, eval.episodes): reproduces summary.json.
        episodes, seed = run_eval_settings(path, args.episodes, args.seed)
        returns = evaluate_run(path, episodes=episodes, seed=seed)
    print(
        f"eval return {returns.mean():.2f} ± {returns.std():.2f} over {returns.size} episodes "
        f"(min {returns.min():.2f}, max {returns.max():.2f})"
    )
    if args.video is not None:
        from trpo_tf.video import record_video

        video = record_video(path, _video_dir(args), seed)
        print(f"video: {video}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from trpo_tf.export import ENV_TFLITE_FILE, export_run

    out = export_run(Path(args.run_dir), args.out, format=args.format, force=args.force)
    env_model = out.with_name(ENV_TFLITE_FILE)
    also = f" and {env_model}" if args.format == "tflite" and env_model.is_file() else ""
    print(f"exported {args.format}: {out}{also}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from trpo_tf.tracking.plots import plot_comparison

    if args.out:
        out = Path(args.out)
    elif len(args.run_dirs) == 1:
        out = Path(args.run_dirs[0]) / "comparison.png"
    else:
        out = Path("comparison.png")
    print(f"wrote {plot_comparison(args.run_dirs, out)}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from trpo_tf.tracking.compare import format_summary_table, summarize

    print(format_summary_table(summarize(args.run_dirs)))
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from trpo_tf.registry import plugin_report

    report = plugin_report(load=args.check)
    print(report.text)
    if args.check and report.problems:
        print(
            f"trpo-tf: plugins --check failed: {report.problems} entr"
            f"{'y is' if report.problems == 1 else 'ies are'} BROKEN or DUPLICATE (marked "
            "above); reinstall or fix the broken package, uninstall one provider of a duplicate",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trpo-tf", description="Trust Region Policy Optimization for TensorFlow/Keras."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train from a YAML experiment")
    train.add_argument("experiment", nargs="?", help="path to the experiment YAML")
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its newest checkpoint"
    )
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a config key (value parsed as YAML); repeatable",
    )
    train.add_argument("--seed", type=int, help="override the experiment's seed")
    train.add_argument("--run-dir", help="where to write the run (default runs/NAME-sSEED-TIME)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument(
        "--log-every", type=int, default=1, help="iterations between plain progress lines"
    )
    train.add_argument(
        "--wandb", action="store_true", help="track in W&B (sets tracking.wandb.enabled=true)"
    )
    train.add_argument(
        "--seeds",
        metavar="SEEDS",
        help="train several seeds (0-4 or 0,2,5) into RUN_DIR/seed_N, one parent directory",
    )
    train.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="with --seeds: run N seeds at a time in child processes (default 1: in sequence)",
    )
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a trained run deterministically")
    evaluate.add_argument("path", help="a run directory or an exported SavedModel directory")
    evaluate.add_argument(
        "--episodes",
        type=int,
        help="episodes to run (default: the run's eval.episodes; "
        f"{EXPORT_EVAL_EPISODES} for a SavedModel directory)",
    )
    evaluate.add_argument(
        "--seed",
        type=int,
        help="base reset seed (default: the run's own evaluation seed, "
        "config seed + 10000, so a run directory reproduces summary.json's final_eval_return; "
        f"{EXPORT_EVAL_SEED} for a SavedModel directory)",
    )
    evaluate.add_argument(
        "--video",
        nargs="?",
        const="",
        metavar="DIR",
        help="also record one episode as MP4 (moviepy) or GIF into DIR (default PATH/videos)",
    )
    evaluate.set_defaults(func=_cmd_eval)

    export = sub.add_parser("export", help="export a run's policy as a TensorFlow-only model")
    export.add_argument("run_dir", help="a finished run directory")
    export.add_argument(
        "--out",
        help="output directory (default RUN_DIR/export, replaced on re-export); "
        "an existing non-empty directory needs --force",
    )
    export.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out directory entirely with the export (never a run directory)",
    )
    export.add_argument(
        "--format",
        choices=("savedmodel", "tflite"),
        default="savedmodel",
        help="tflite also writes OUT/policy.tflite of the action signature and "
        "OUT/policy_env.tflite of env_action",
    )
    export.set_defaults(func=_cmd_export)

    plugins = sub.add_parser("plugins", help="list registered plug-ins by group")
    plugins.add_argument(
        "--check",
        action="store_true",
        help="also import each plug-in; exit 1 if any is BROKEN or DUPLICATE",
    )
    plugins.set_defaults(func=_cmd_plugins)

    plot = sub.add_parser("plot", help="learning curves: mean and spread across seeds, one PNG")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs or --seeds parents")
    plot.add_argument(
        "--out",
        help="the image, PNG or another matplotlib format by extension (default: "
        "RUN_DIR/comparison.png for one RUN_DIR, ./comparison.png in the current "
        "directory for several)",
    )
    plot.set_defaults(func=_cmd_plot)

    summary = sub.add_parser("summary", help="final return (mean ± std, IQM) and steps/s table")
    summary.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="runs or --seeds parents")
    summary.set_defaults(func=_cmd_summary)
    return parser


@contextlib.contextmanager
def _plain_tracker_warnings() -> Iterator[None]:
    """Show our warnings as their own one line (each starts with ``trpo-tf: warning:``)."""
    from trpo_tf.errors import TrpoTfWarning

    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, TrpoTfWarning):
            return f"{message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = default


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _plain_tracker_warnings():
            return args.func(args)
    except TrpoTfError as error:
        print(f"trpo-tf: error: {error}", file=sys.stderr)
        # 2 for what the user can fix in the command or config; StorageError: 74.
        return getattr(error, "exit_status", 2)
    except KeyboardInterrupt as interrupt:
        from trpo_tf.tracking.seeds import INTERRUPTED  # what train --seeds reads back

        # 128 + the signal: 130 (Ctrl-C), 143 (SIGTERM), 129 (SIGHUP).
        status = getattr(interrupt, "exit_status", INTERRUPTED)
        print(
            f"trpo-tf: stopped ({interrupt.args[0] if interrupt.args else 'SIGINT'})",
            file=sys.stderr,
        )
        return status


if __name__ == "__main__":
    sys.exit(main())
