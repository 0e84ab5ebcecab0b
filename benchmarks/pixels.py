"""Learning from pixels: the cnn network on pixel_grid, with an MLP on the same pixels.

``pixel_grid`` (trpo_tf/envs/pixel_grid.py) shows a 5×5 grid as a 15×15×3 uint8
image; the agent must walk to a goal whose position changes every episode, so the
policy has to read the image. Each variant trains ``trpo-tf train`` in a subprocess
for every seed (one at a time: on a 2-core machine parallel runs only slow each
other), evaluating the deterministic policy every ``--eval-every`` iterations. The
report (markdown on stdout, and ``--json``) gives per variant and env-step mark the
mean eval return over seeds, the wall time and env steps/s, beside two references:
a uniformly random policy and the shortest path (the best possible mean return).

    python benchmarks/pixels.py --seeds 0 1 2 --steps 61440 --json pixels.json \\
        --plot docs/benchmarks/networks_pixels.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_KWARGS = {"size": 5, "cell": 3}

# The torso is what differs; both see the same flattened 675-pixel rows.
VARIANTS: dict[str, dict[str, Any]] = {
    "cnn": {
        "policy": {
            "hidden": [64],
            "activation": "relu",
            "network": {
                "name": "cnn",
                "filters": [16, 32],
                "kernel_sizes": [3, 3],
                "strides": [1, 2],
            },
        },
        "value": {"hidden": [64], "activation": "relu"},
    },
    "mlp": {
        "policy": {"hidden": [64, 64], "activation": "tanh"},
        "value": {"hidden": [64, 64], "activation": "tanh"},
    },
}


def experiment(variant: str, steps: int, steps_per_iteration: int, eval_every: int) -> dict:
    """The experiment a variant trains (the same everywhere but the networks)."""
    return {
        "name": f"pixel-grid-{variant}",
        "env": {"id": "pixel_grid", "kwargs": dict(ENV_KWARGS), "n_envs": 8},
        **VARIANTS[variant],
        "advantage": {"gamma": 0.99, "lam": 0.95},
        "trainer": {
            "total_steps": steps,
            "steps_per_iteration": steps_per_iteration,
            "max_kl": 0.02,
        },
        "eval": {"every": eval_every, "episodes": 20, "keep_best": False},
        "tracking": {"tensorboard": False},
        "checkpoint": {"every_s": 0},
    }


def train(config: dict, seed: int, run_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "experiment.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
        command = [sys.executable, "-m", "trpo_tf.cli", "train", str(path), "--quiet"]
        command += ["--seed", str(seed), "--run-dir", str(run_dir)]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{config['name']} seed {seed} failed:\n{done.stderr[-3000:]}")


def curve(run_dir: Path) -> list[dict[str, float]]:
    """``[{env_steps, wall_time_s, eval_return, episode_return_mean}]`` of the eval rows."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("eval_return")]
    return [
        {
            "env_steps": int(row["env_steps"]),
            "wall_time_s": float(row["wall_time_s"]),
            "eval_return": float(row["eval_return"]),
            "episode_return_mean": float(row["episode_return_mean"] or "nan"),
        }
        for row in rows
    ]


def references(episodes: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean return of a uniformly random policy and of the shortest path."""
    from trpo_tf.envs.pixel_grid import PixelGridEnv, optimal_return

    env = PixelGridEnv(**ENV_KWARGS)
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(4)))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return {"random": float(np.mean(returns)), "optimal": optimal_return(ENV_KWARGS["size"])}


def report(results: dict[str, Any]) -> str:
    """Markdown: eval return (mean ± std over seeds) per variant at each eval row."""
    lines = [
        f"pixel_grid {ENV_KWARGS}, seeds {results['seeds']}, {results['steps']:,} env steps; "
        f"random policy {results['references']['random']:.3f}, shortest path "
        f"{results['references']['optimal']:.3f}",
        "",
        "| variant | env steps | eval return (mean ± std over seeds) | wall time (s) |",
        "|---|---|---|---|",
    ]
    for variant, runs in results["runs"].items():
        curves = [run["curve"] for run in runs]
        for index, point in enumerate(curves[0]):
            values = [c[index]["eval_return"] for c in curves if index < len(c)]
            walls = [c[index]["wall_time_s"] for c in curves if index < len(c)]
            lines.append(
                f"| {variant} | {point['env_steps']:,} | {np.mean(values):.3f} ± "
                f"{np.std(values):.3f} | {np.mean(walls):.0f} |"
            )
    lines += ["", "| variant | train steps/s (mean) | wall time of the whole run (s, mean) |"]
    lines.append("|---|---|---|")
    for variant, runs in results["runs"].items():
        lines.append(
            f"| {variant} | {np.mean([r['summary']['train_steps_per_s'] for r in runs]):,.0f} | "
            f"{np.mean([r['summary']['wall_time_s'] for r in runs]):.0f} |"
        )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.6))
    axes = figure.add_subplot()
    for variant, runs in results["runs"].items():
        steps = np.array([p["env_steps"] for p in runs[0]["curve"]])
        values = np.array([[p["eval_return"] for p in run["curve"]] for run in runs])
        axes.plot(steps, values.mean(0), label=f"{variant} (mean of {len(runs)} seeds)")
        axes.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
    labels = {"random": "uniformly random policy", "optimal": "shortest path"}
    for name, value in results["references"].items():
        axes.axhline(value, color="grey", linestyle=":", linewidth=1)
        axes.text(
            0.01,
            value,
            labels.get(name, name),
            transform=axes.get_yaxis_transform(),
            fontsize=8,
            color="grey",
            va="bottom",
        )
    axes.set_xlabel("env steps")
    axes.set_ylabel("deterministic eval return")
    axes.set_title("pixel_grid (15x15x3 uint8 images)")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=61_440)
    parser.add_argument("--steps-per-iteration", type=int, default=2048)
    parser.add_argument("--eval-every", type=int, default=2, help="iterations")
    parser.add_argument("--out", type=Path, help="keep the run directories here")
    parser.add_argument("--json", type=Path, help="write the curves and summaries")
    parser.add_argument("--plot", type=Path, help="write a learning-curve PNG")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "seeds": args.seeds,
        "steps": args.steps,
        "env_kwargs": ENV_KWARGS,
        "references": references(),
        "experiments": {},
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        for variant in args.variants:
            config = experiment(variant, args.steps, args.steps_per_iteration, args.eval_every)
            results["experiments"][variant] = config
            results["runs"][variant] = []
            for seed in args.seeds:
                run_dir = out / f"{variant}-seed{seed}"
                start = time.perf_counter()
                train(config, seed, run_dir)
                summary = json.loads((run_dir / "summary.json").read_text())
                results["runs"][variant].append(
                    {"seed": seed, "curve": curve(run_dir), "summary": summary}
                )
                print(
                    f"{variant} seed {seed}: eval {summary['final_eval_return']:.3f} in "
                    f"{time.perf_counter() - start:.0f} s",
                    file=sys.stderr,
                )
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
