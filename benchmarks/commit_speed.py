"""Training speed of this checkout against another commit, in one run.

Both versions train the same experiments with the same seed, in alternating
subprocesses (the other version runs from a ``git worktree`` put first on
``PYTHONPATH``), several repetitions each. Reported per experiment: the median
``train_steps_per_s`` (training alone: no final checkpoint, export or
evaluations) and ``steps_per_s`` of each version, and the median of the paired
ratios this/base with its range. A ratio near 1.0 means no change; on shared
machines single repetitions vary by ±10% or more, so read the median.

    .venv-bench/bin/python benchmarks/commit_speed.py --base 14636e8 --reps 5 \\
        --experiment experiments/cartpole.yaml \\
        --experiment experiments/speed/pendulum_zoo_gsde.yaml:trainer.total_steps=49152
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _train(source: Path, experiment: str, overrides: list[str], seed: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(source), CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    args = [sys.executable, "-m", "trpo_tf.cli", "train", experiment, "--quiet"]
    args += ["--run-dir", str(out), "--seed", str(seed)]
    for override in overrides:
        args += ["--set", override]
    args += ["--set", "tracking.tensorboard=false"]
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{source}: {experiment} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument(
        "--experiment",
        action="append",
        required=True,
        help="PATH[:key=value,key=value] (overrides applied to both versions)",
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the per-repetition numbers")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            results = _compare(args, base, Path(scratch))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    print(f"this checkout against {args.base}, {args.reps} alternating repetitions, medians")
    print("| experiment | base train steps/s | this | ratio (range) | base steps/s | this |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        base_train = np.array([r["base"]["train_steps_per_s"] for r in runs])
        this_train = np.array([r["this"]["train_steps_per_s"] for r in runs])
        ratios = this_train / base_train
        print(
            f"| {name} | {np.median(base_train):,.0f} | {np.median(this_train):,.0f} | "
            f"{np.median(ratios):.3f} ({ratios.min():.3f}–{ratios.max():.3f}) | "
            f"{np.median([r['base']['steps_per_s'] for r in runs]):,.0f} | "
            f"{np.median([r['this']['steps_per_s'] for r in runs]):,.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"base": args.base, "results": results}, indent=1))
    return 0


def _compare(args: argparse.Namespace, base: Path, scratch: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for spec in args.experiment:
        path, _, extra = spec.partition(":")
        overrides = [o for o in extra.split(",") if o]
        name = Path(path).stem + (f" ({', '.join(overrides)})" if overrides else "")
        runs = results.setdefault(name, [])
        for rep in range(args.reps):
            order = [("base", base), ("this", ROOT)]
            if rep % 2:
                order.reverse()
            pair = {}
            for label, source in order:
                out = scratch / f"{label}-{len(results)}-{rep}"
                summary = _train(source, path, overrides, args.seed, out)
                pair[label] = {
                    "train_steps_per_s": summary["train_steps_per_s"],
                    "steps_per_s": summary["steps_per_s"],
                    "final_eval_return": summary["final_eval_return"],
                }
            runs.append(pair)
            ratio = pair["this"]["train_steps_per_s"] / pair["base"]["train_steps_per_s"]
            print(f"{name} rep {rep}: ratio {ratio:.3f}", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
