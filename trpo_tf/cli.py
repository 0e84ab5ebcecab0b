"""``trpo-tf`` command line: train, eval, plugins.

User errors (bad config, unknown plug-in, missing run directory, NaN from an env)
print one line ``trpo-tf: error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from trpo_tf.errors import RunDirError, TrpoTfError


def _default_run_dir(name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{name}-s{seed}-{stamp}"


def _cmd_train(args: argparse.Namespace) -> int:
    from trpo_tf.config import load_experiment

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_experiment(args.experiment, overrides)
    from trpo_tf.train import train  # TensorFlow loads only once the config is valid

    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(config.name, config.seed)
    if (run_dir / "metrics.csv").exists():
        raise RunDirError(
            f"run directory {run_dir} already holds a run; pass another --run-dir or remove it"
        )
    result = train(config, run_dir, quiet=args.quiet, progress_every=args.log_every)
    print(
        f"done: {result.env_steps:,d} env steps in {result.wall_time_s:.1f} s "
        f"({result.steps_per_s:,.0f} steps/s); eval return {result.final_eval_return:.2f} "
        f"± {result.final_eval_return_std:.2f} over {result.eval_episodes} episodes; "
        f"run directory {result.run_dir}"
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from trpo_tf.run_loading import evaluate_run

    returns = evaluate_run(Path(args.path), episodes=args.episodes, seed=args.seed)
    print(
        f"eval return {returns.mean():.2f} ± {returns.std():.2f} over {returns.size} episodes "
        f"(min {returns.min():.2f}, max {returns.max():.2f})"
    )
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from trpo_tf.registry import format_plugins

    print(format_plugins(load=args.check))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trpo-tf", description="Trust Region Policy Optimization for TensorFlow/Keras."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train from a YAML experiment")
    train.add_argument("experiment", help="path to the experiment YAML")
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
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("eval", help="evaluate a trained run deterministically")
    evaluate.add_argument("path", help="a run directory")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=12345)
    evaluate.set_defaults(func=_cmd_eval)

    plugins = sub.add_parser("plugins", help="list registered plug-ins by group")
    plugins.add_argument("--check", action="store_true", help="also import each plug-in")
    plugins.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TrpoTfError as error:
        print(f"trpo-tf: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trpo-tf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
