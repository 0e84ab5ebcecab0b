"""Learning curves of a fresh-seed campaign's trpo_tf runs of one env, seeds together.

    python benchmarks/fresh_curves.py --folder benchmarks/results/fresh_llc_tuned \\
        --env LunarLanderContinuous-v3 --out docs/benchmarks/fresh_lunar_lander_continuous.png

Reads ``FOLDER/trpo_<env>_s<seed>/metrics.csv`` (the names ``fresh_runs.py`` writes).
The line and band are the training episode return (``episode_return_mean`` per
iteration): the mean over seeds and its min-max range, each seed's curve
interpolated onto a common env-step grid. The markers are the deterministic
evaluations (``eval_return``): the mean over the seeds that have one at that step,
with the min-max range as an error bar.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sb3_zoo import slug  # noqa: E402 - the folder names fresh_runs.py writes

GRID_POINTS = 200


def read_run(metrics: Path) -> dict[str, np.ndarray]:
    """``steps``/``train`` per iteration and ``eval_steps``/``eval`` per evaluation."""
    with open(metrics, newline="") as handle:
        rows = list(csv.DictReader(handle))
    train = [(int(r["env_steps"]), float(r["episode_return_mean"])) for r in rows]
    train = [(s, v) for s, v in train if np.isfinite(v)]
    evals = [(int(r["env_steps"]), float(r["eval_return"])) for r in rows if r.get("eval_return")]
    return {
        "steps": np.array([s for s, _ in train], np.float64),
        "train": np.array([v for _, v in train], np.float64),
        "eval_steps": np.array([s for s, _ in evals], np.int64),
        "eval": np.array([v for _, v in evals], np.float64),
    }


def collect(folder: Path, env_id: str) -> dict[int, dict[str, np.ndarray]]:
    """Every finished-or-not trpo_tf run of ``env_id`` in ``folder``, by seed."""
    runs = {}
    prefix = f"trpo_{slug(env_id)}_s"
    for path in sorted(folder.glob(f"{prefix}*/metrics.csv")):
        seed = path.parent.name.removeprefix(prefix)
        if seed.isdigit():
            runs[int(seed)] = read_run(path)
    return runs


def curves(runs: dict[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Training return on a common grid (mean, min, max) and evaluations by step."""
    end = min(run["steps"][-1] for run in runs.values())
    start = max(run["steps"][0] for run in runs.values())
    grid = np.linspace(start, end, GRID_POINTS)
    train = np.stack([np.interp(grid, run["steps"], run["train"]) for run in runs.values()])
    eval_steps = sorted({int(s) for run in runs.values() for s in run["eval_steps"]})
    per_step = [
        [
            run["eval"][run["eval_steps"] == step][0]
            for run in runs.values()
            if step in run["eval_steps"]
        ]
        for step in eval_steps
    ]
    return {
        "grid": grid,
        "train_mean": train.mean(axis=0),
        "train_min": train.min(axis=0),
        "train_max": train.max(axis=0),
        "eval_steps": np.array(eval_steps, np.float64),
        "eval_mean": np.array([np.mean(v) for v in per_step]),
        "eval_min": np.array([np.min(v) for v in per_step]),
        "eval_max": np.array([np.max(v) for v in per_step]),
    }


def plot(runs: dict[int, dict[str, np.ndarray]], env_id: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = curves(runs)
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(c["grid"], c["train_mean"], color="C0", label="training episode return (mean)")
    axes.fill_between(c["grid"], c["train_min"], c["train_max"], color="C0", alpha=0.2)
    axes.errorbar(
        c["eval_steps"],
        c["eval_mean"],
        yerr=[c["eval_mean"] - c["eval_min"], c["eval_max"] - c["eval_mean"]],
        fmt="o",
        color="C1",
        capsize=3,
        label="deterministic evaluation (mean, range)",
    )
    seeds = ", ".join(map(str, sorted(runs)))
    axes.set_title(f"{env_id}, trpo_tf, seeds {seeds}")
    axes.set_xlabel("env steps")
    axes.set_ylabel("return")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--env", required=True, help="the gymnasium id, e.g. Hopper-v5")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = parser.parse_args()
    runs = collect(args.folder, args.env)
    if not runs:
        print(f"fresh_curves: no trpo_{slug(args.env)}_s<seed>/metrics.csv in {args.folder}")
        return 1
    plot(runs, args.env, args.out)
    print(f"wrote {args.out} ({len(runs)} seeds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
