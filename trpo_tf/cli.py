"""``trpo-tf`` command line: train, eval, export, plot, summary, experiments, config, plugins.

User errors (bad config, unknown plug-in, missing run directory, NaN from an env, a
missing optional package) print one line ``trpo-tf: error: ...`` and exit with
status 2. What can be checked without TensorFlow (the config, the environment,
optional packages, output paths) is checked before TensorFlow is imported, and
TensorFlow is imported without its C++ start-up log (:mod:`trpo_tf.tf_runtime`;
``--verbose`` or ``TRPO_TF_VERBOSE=1`` keeps it).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from trpo_tf import __version__
from trpo_tf.errors import RunDirError, TrpoTfError

DEBUG_ENV = "TRPO_TF_DEBUG"
"""Set to 1 by ``--debug``: a plug-in's error line is followed by its traceback."""


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
    _check_before_tensorflow(config)
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
        _import_tensorflow()
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


def _check_before_tensorflow(config) -> None:
    """What can fail without TensorFlow: optional packages, then one env made and read.

    A plug-in env that imports TensorFlow does so without its start-up log.
    """
    from trpo_tf import extras
    from trpo_tf.envs import describe, make_env_fn
    from trpo_tf.tf_runtime import quiet_start

    extras.check_experiment(config)
    with quiet_start():
        # A plug-in env first through the check that names its package and entry point.
        from trpo_tf.plugin_checks import check_env

        check_env(config)
        env_fn = make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps)
        describe(config.env.id, env_fn)


def _import_tensorflow() -> None:
    from trpo_tf.tf_runtime import import_tensorflow_quietly

    import_tensorflow_quietly()


def _cmd_train(args: argparse.Namespace) -> int:
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
    _check_before_tensorflow(config)
    # TensorFlow loads only once the config, its packages and its env are known good.
    _import_tensorflow()
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
        _check_video(Path(args.path))


def _video_dir(args: argparse.Namespace) -> Path:
    return Path(args.video) if args.video else Path(args.path) / "videos"


def _env_of(path: Path) -> tuple[str, dict, int | None]:
    """``(env.id, env.kwargs, env.max_episode_steps)`` of a run or export, without TensorFlow."""
    import json

    from trpo_tf.config import load_experiment

    metadata = path / "metadata.json"
    if (path / "saved_model.pb").is_file() and metadata.is_file():
        env = json.loads(metadata.read_text()).get("env") or {}
        return str(env.get("id")), dict(env.get("kwargs") or {}), env.get("max_episode_steps")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path} is not a run directory: no config.yaml in it")
    config = load_experiment(path / "config.yaml")
    return config.env.id, dict(config.env.kwargs), config.env.max_episode_steps


def _check_video(path: Path) -> None:
    """``--video`` can render this env: its packages, then one frame (before any episode runs)."""
    import numpy as np

    from trpo_tf import extras
    from trpo_tf.envs import make_env_fn
    from trpo_tf.errors import ConfigError
    from trpo_tf.tf_runtime import quiet_start
    from trpo_tf.video import RGB_ARRAY_HINT, VideoError, render_hint

    env_id, kwargs, max_steps = _env_of(path)
    extras.check_video(env_id)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # as trpo_tf.video does
    with quiet_start():
        try:
            env = make_env_fn(env_id, {**kwargs, "render_mode": "rgb_array"}, max_steps)()
        except ConfigError as error:
            raise VideoError(
                f"environment '{env_id}' cannot be built with render_mode='rgb_array': {error}"
            ) from error
        try:
            env.reset(seed=0)
            frame = env.render()
        except Exception as error:  # noqa: BLE001 - any failure means it cannot render
            first = (str(error).strip().splitlines() or [""])[0]
            raise VideoError(
                f"environment '{env_id}' cannot render rgb_array frames "
                f"({type(error).__name__}: {first}); {render_hint(error)}"
            ) from error
        finally:
            env.close()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise VideoError(
            f"environment '{env_id}' cannot render rgb_array frames (render() returned "
            f"{type(frame).__name__}); {RGB_ARRAY_HINT}"
        )


def _cmd_eval(args: argparse.Namespace) -> int:
    _check_eval_args(args)
    _import_tensorflow()
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
    _import_tensorflow()
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
    from trpo_tf.tf_runtime import quiet_start

    with quiet_start():  # --check imports plug-ins, which may import TensorFlow
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


def _cmd_experiments(args: argparse.Namespace) -> int:
    from trpo_tf import catalog

    print(catalog.format_table(catalog.describe_all()))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from trpo_tf import catalog
    from trpo_tf.config import load_experiment
    from trpo_tf.config_doc import render

    chosen = catalog.experiment_for(args.experiment)
    path = chosen.path
    overrides = [*chosen.overrides, *(args.set or [])]
    config = load_experiment(path, overrides)
    name = catalog.name_of(path)
    source = f"shipped experiment {name}" if name else str(path)
    if overrides:
        source += " with " + " ".join(f"--set {item}" for item in overrides)
    sys.stdout.write(render(config, source))
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    """``trpo-tf tune`` (:mod:`trpo_tf.tune.command`), with EXPERIMENT resolved like train's."""
    from trpo_tf import extras
    from trpo_tf.catalog import resolve

    extras.require("tune", "trpo-tf tune")
    args.experiment = str(resolve(args.experiment))
    return args.tune_command(args)


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes (also before the command: trpo-tf --verbose train ...)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite the value given before it.
    common.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show TensorFlow's own start-up log (also TRPO_TF_VERBOSE=1)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"follow a plug-in's error line with its traceback (sets {DEBUG_ENV}=1)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="trpo-tf",
        description="Trust Region Policy Optimization for TensorFlow/Keras.",
        epilog="Start with: trpo-tf experiments, then trpo-tf train cartpole.",
    )
    parser.add_argument("--version", action="version", version=f"trpo-tf {__version__}")
    parser.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train", parents=[common], help="train an experiment (a shipped name or a YAML file)"
    )
    train.add_argument(
        "experiment",
        nargs="?",
        metavar="EXPERIMENT",
        help="a shipped experiment (cartpole, mujoco/halfcheetah, ...: trpo-tf experiments), "
        "the path of an experiment YAML, or a gymnasium id (Walker2d-v5: its shipped "
        "experiment, else for Box actions the shared default mujoco/default)",
    )
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
    train.add_argument(
        "--run-dir", metavar="RUN_DIR", help="where to write the run (default runs/NAME-sSEED-TIME)"
    )
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
        help="train several seeds (0-4 or 0,2,5) into RUN_DIR/seed_N, one parent directory "
        "(default runs/NAME-seeds-TIME)",
    )
    train.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="with --seeds: run N seeds at a time in child processes (default 1: in sequence)",
    )
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser(
        "eval", parents=[common], help="evaluate a trained run deterministically"
    )
    evaluate.add_argument(
        "path", metavar="RUN_DIR", help="a run directory, or an exported SavedModel directory"
    )
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
        help="also record one episode as MP4 (moviepy) or GIF into DIR (default "
        "RUN_DIR/videos); rendering is checked before the episodes run "
        '(pip install "trpo_tf[video]")',
    )
    evaluate.set_defaults(func=_cmd_eval)

    export = sub.add_parser(
        "export", parents=[common], help="export a run's policy as a TensorFlow-only model"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
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

    plugins = sub.add_parser("plugins", parents=[common], help="list registered plug-ins by group")
    plugins.add_argument(
        "--check",
        action="store_true",
        help="also import each plug-in; exit 1 if any is BROKEN or DUPLICATE",
    )
    plugins.set_defaults(func=_cmd_plugins)

    plot = sub.add_parser(
        "plot", parents=[common], help="learning curves: mean and spread across seeds, one PNG"
    )
    plot.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="runs, or folders holding runs at any depth (a --seeds parent, runs/)",
    )
    plot.add_argument(
        "--out",
        help="the image, PNG or another matplotlib format by extension (default: "
        "RUN_DIR/comparison.png for one RUN_DIR, ./comparison.png in the current "
        "directory for several)",
    )
    plot.set_defaults(func=_cmd_plot)

    summary = sub.add_parser(
        "summary", parents=[common], help="final return (mean ± std, IQM) and steps/s table"
    )
    summary.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="runs, or folders holding runs at any depth (a --seeds parent, runs/)",
    )
    summary.set_defaults(func=_cmd_summary)

    experiments = sub.add_parser(
        "experiments",
        parents=[common],
        help="the shipped experiments: env, budget and measured result",
    )
    experiments.set_defaults(func=_cmd_experiments)

    config = sub.add_parser(
        "config",
        parents=[common],
        help="an experiment resolved, every key with its default and meaning (as YAML)",
    )
    config.add_argument(
        "experiment", metavar="EXPERIMENT", help="a shipped experiment name or a YAML path"
    )
    config.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a config key (value parsed as YAML); repeatable",
    )
    config.set_defaults(func=_cmd_config)

    from trpo_tf.tune.command import add_parser as add_tune_parser

    tune = add_tune_parser(sub)
    for action in common._actions:
        if action.option_strings:
            tune.add_argument(
                *action.option_strings,
                action="store_true",
                default=argparse.SUPPRESS,
                help=action.help,
            )
    tune.set_defaults(func=_cmd_tune, tune_command=tune.get_default("func"))
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
    # Environment variables, so that --parallel seeds' child processes see them too.
    if getattr(args, "verbose", False):
        from trpo_tf.tf_runtime import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    if getattr(args, "debug", False):
        os.environ[DEBUG_ENV] = "1"
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


def run() -> NoReturn:
    """The ``trpo-tf`` console script: :func:`main`, then exit without a slow teardown.

    Once TensorFlow is loaded, the interpreter's own shutdown (finalizing thousands of
    modules, TensorFlow's C++ objects) takes 1–2 s and writes nothing. So after the
    command, the exit handlers run (``atexit``: logging, multiprocessing, W&B, the
    stderr filter), non-daemon threads are joined and the streams flushed, as the
    interpreter would, and then the process ends at once.
    """
    status = main()
    if "tensorflow" not in sys.modules:
        sys.exit(status)
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (trpo-tf ... | head)
            status = status or 1
    os._exit(status)


if __name__ == "__main__":
    run()
