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
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from trpo_tf import __version__
from trpo_tf.commands.evaluate import EXPORT_EVAL_EPISODES, EXPORT_EVAL_SEED, cmd_eval, cmd_export
from trpo_tf.commands.train import cmd_train
from trpo_tf.errors import TrpoTfError

DEBUG_ENV = "TRPO_TF_DEBUG"
"""Set to 1 by ``--debug``: a plug-in's error line is followed by its traceback."""


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
    train.set_defaults(func=cmd_train)

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
    evaluate.set_defaults(func=cmd_eval)

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
    export.set_defaults(func=cmd_export)

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
