"""Memory under partial observability: lstm and gru policies against an MLP on masked tasks.

``cartpole_masked`` and ``pendulum_masked`` (trpo_tf/envs/masked.py) hide the
velocities of CartPole-v1 and Pendulum-v1, so one observation does not tell the
state and a memoryless policy is handicapped. Per task the variants are

* ``mlp``: the MLP policy on the masked env (``experiments/recurrent/TASK_masked_mlp``);
* ``lstm`` / ``gru``: a recurrent policy on the masked env
  (``experiments/recurrent/TASK_masked_lstm``; gru changes its lstm networks to gru);
* ``mlp_full``: the MLP on the fully observed env, the reference to get close to.

All variants of a task share the env and trainer settings (those of the shipped
``experiments/cartpole.yaml`` / ``pendulum.yaml``). Each trains ``trpo-tf train`` in a
subprocess for every seed, one at a time (on a 2-core machine parallel runs only slow
each other), evaluating the deterministic policy every ``--eval-every`` iterations.
The report (markdown on stdout, and ``--json``) gives per task the final eval return
per variant (mean ± std over seeds, and each seed), the eval curve, and the cost of an
env step: training env steps/s, the rollout's and the update's share, and how many
times an mlp step each variant's step costs. A run that fails is reported and the
others go on (the exit status is then 1).

    nice -n 10 python benchmarks/recurrent.py --tasks cartpole --variants mlp mlp_full \\
        --json benchmarks/results/recurrent_mlp.json --plot recurrent.png
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
EXPERIMENTS = ROOT / "trpo_tf" / "experiments" / "recurrent"

TASKS: dict[str, dict[str, Any]] = {
    "cartpole": {"masked_env": "cartpole_masked", "full_env": "CartPole-v1", "steps": 200_000},
    "pendulum": {"masked_env": "pendulum_masked", "full_env": "Pendulum-v1", "steps": 300_000},
}
VARIANTS = ("mlp", "lstm", "gru", "mlp_full")


def experiment(
    task: str, variant: str, steps: int, eval_every: int, steps_per_iteration: int | None
) -> dict:
    """The experiment a variant trains: the shipped YAML of its policy, on its env."""
    recurrent = variant in ("lstm", "gru")
    source = EXPERIMENTS / f"{task}_masked_{'lstm' if recurrent else 'mlp'}.yaml"
    config = yaml.safe_load(source.read_text())
    config["name"] = (
        f"{task}_{'full' if variant == 'mlp_full' else 'masked'}_{variant.removesuffix('_full')}"
    )
    if variant == "gru":  # every recurrent network of the experiment (policy, and V if so)
        for section in ("policy", "value"):
            if config[section].get("network", {}).get("name") == "lstm":
                config[section]["network"]["name"] = "gru"
    if variant == "mlp_full":
        config["env"]["id"] = TASKS[task]["full_env"]
    trainer = config.setdefault("trainer", {})
    trainer["total_steps"] = steps
    if steps_per_iteration is not None:
        trainer["steps_per_iteration"] = steps_per_iteration
    config["eval"] = {**config.get("eval", {}), "every": eval_every, "keep_best": False}
    config["tracking"] = {"tensorboard": False}
    config["checkpoint"] = {"every_s": 0}
    return config


def train(config: dict, seed: int, run_dir: Path) -> str | None:
    """Trains in a subprocess; the error's last lines if it failed, else None."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "experiment.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
        command = [sys.executable, "-m", "trpo_tf.cli", "train", str(path), "--quiet"]
        command += ["--seed", str(seed), "--run-dir", str(run_dir)]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return (done.stderr.strip() or done.stdout.strip())[
            -3000:
        ] or f"exit status {done.returncode}"
    return None


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def curve(rows: list[dict[str, str]]) -> list[dict[str, float]]:
    """``[{env_steps, wall_time_s, eval_return, episode_return_mean}]`` of the eval rows."""
    return [
        {
            "env_steps": int(row["env_steps"]),
            "wall_time_s": float(row["wall_time_s"]),
            "eval_return": float(row["eval_return"]),
            "episode_return_mean": float(row["episode_return_mean"] or "nan"),
        }
        for row in rows
        if row.get("eval_return")
    ]


def speed(rows: list[dict[str, str]], summary: dict[str, Any]) -> dict[str, float]:
    """Cost of an env step: training alone (``train_steps_per_s``, no evaluations), the
    rollout alone, and the update per iteration (the median leaves out the first
    iteration's tracing)."""
    steps = int(summary["env_steps"])
    rollout_s = sum(float(row["rollout_time_s"] or 0.0) for row in rows)
    update_s = [float(row["update_time_s"] or "nan") for row in rows]
    return {
        "train_steps_per_s": float(summary["train_steps_per_s"]),
        "us_per_step": 1e6 / float(summary["train_steps_per_s"]),
        "rollout_steps_per_s": steps / rollout_s if rollout_s > 0 else float("nan"),
        "update_s_median": float(np.nanmedian(update_s)),
        "update_s_total": float(np.nansum(update_s)),
        "wall_time_s": float(summary["wall_time_s"]),
    }


def _mean_std(values: list[float], digits: int = 1) -> str:
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def report(results: dict[str, Any]) -> str:
    """Markdown per task: final returns, the eval curves, and the cost of an env step."""
    lines: list[str] = []
    for task, data in results["tasks"].items():
        runs = {variant: found for variant, found in data["runs"].items() if found}
        lines += [
            f"## {task}: {data['masked_env']} (masked) vs {data['full_env']} (full)",
            "",
            f"seeds {results['seeds']}, {data['steps']:,} env steps budget; deterministic "
            f"eval every {results['eval_every']} iterations ({data['eval_episodes']} episodes)",
            "",
            "| variant | env | final eval return (mean ± std over seeds) | per seed | env steps |",
            "|---|---|---|---|---|",
        ]
        for variant, found in runs.items():
            finals = [run["summary"]["final_eval_return"] for run in found]
            lines.append(
                f"| {variant} | {data['experiments'][variant]['env']['id']} | {_mean_std(finals)} | "
                f"{', '.join(f'{value:.1f}' for value in finals)} | "
                f"{found[0]['summary']['env_steps']:,} |"
            )
        if runs:
            lines += ["", "Eval return over training (mean ± std over seeds):", ""]
            lines.append("| env steps | " + " | ".join(runs) + " |")
            lines.append("|---" * (len(runs) + 1) + "|")
            longest = max(runs.values(), key=lambda found: len(found[0]["curve"]))
            for index, point in enumerate(longest[0]["curve"]):
                cells = []
                for found in runs.values():
                    values = [
                        run["curve"][index]["eval_return"]
                        for run in found
                        if index < len(run["curve"])
                    ]
                    cells.append(_mean_std(values) if values else "")
                lines.append(f"| {point['env_steps']:,} | " + " | ".join(cells) + " |")
            base = runs.get("mlp")
            base_us = np.mean([run["speed"]["us_per_step"] for run in base]) if base else None
            lines += [
                "",
                "Cost of an env step (training alone, without evaluations; mean over seeds):",
                "",
                "| variant | train env steps/s | µs per env step | × mlp | rollout env steps/s | "
                "update s/iteration (median) | wall time (s) |",
                "|---|---|---|---|---|---|---|",
            ]
            for variant, found in runs.items():
                mean = {
                    key: np.mean([run["speed"][key] for run in found]) for key in found[0]["speed"]
                }
                ratio = f"{mean['us_per_step'] / base_us:.2f}" if base_us else "-"
                lines.append(
                    f"| {variant} | {mean['train_steps_per_s']:,.0f} | {mean['us_per_step']:.0f} | "
                    f"{ratio} | {mean['rollout_steps_per_s']:,.0f} | {mean['update_s_median']:.3f} | "
                    f"{mean['wall_time_s']:.0f} |"
                )
        lines.append("")
    if results["failed"]:
        lines += ["## Failed runs", ""]
        for failure in results["failed"]:
            last = failure["error"].strip().splitlines()[-1] if failure["error"].strip() else ""
            lines.append(f"- {failure['task']} {failure['variant']} seed {failure['seed']}: {last}")
    return "\n".join(lines).rstrip() + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    tasks = list(results["tasks"])
    figure = Figure(figsize=(6 * len(tasks), 3.8))
    for number, task in enumerate(tasks, start=1):
        data = results["tasks"][task]
        axes = figure.add_subplot(1, len(tasks), number)
        for variant, runs in data["runs"].items():
            if not runs:
                continue
            length = min(len(run["curve"]) for run in runs)
            steps = np.array([p["env_steps"] for p in runs[0]["curve"][:length]])
            values = np.array([[p["eval_return"] for p in run["curve"][:length]] for run in runs])
            axes.plot(steps, values.mean(0), label=f"{variant} ({len(runs)} seeds)")
            axes.fill_between(steps, values.min(0), values.max(0), alpha=0.2)
        axes.set_xlabel("env steps")
        axes.set_ylabel("deterministic eval return")
        axes.set_title(f"{task}: {data['masked_env']} vs {data['full_env']}")
        axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--steps",
        type=int,
        help="env steps per run (default: per task, 200k cartpole, 300k pendulum)",
    )
    parser.add_argument("--steps-per-iteration", type=int, help="default: the experiment's (2048)")
    parser.add_argument("--eval-every", type=int, default=5, help="iterations")
    parser.add_argument("--out", type=Path, help="keep the run directories here")
    parser.add_argument("--json", type=Path, help="write the curves, summaries and speeds")
    parser.add_argument("--plot", type=Path, help="write a learning-curve PNG")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {
        "seeds": args.seeds,
        "eval_every": args.eval_every,
        "tasks": {},
        "failed": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        for task in args.tasks:
            steps = args.steps or TASKS[task]["steps"]
            data: dict[str, Any] = {**TASKS[task], "steps": steps, "experiments": {}, "runs": {}}
            results["tasks"][task] = data
            for variant in args.variants:
                config = experiment(task, variant, steps, args.eval_every, args.steps_per_iteration)
                data["experiments"][variant] = config
                data["eval_episodes"] = config["eval"].get("episodes", 10)
                data["runs"][variant] = []
                for seed in args.seeds:
                    run_dir = out / f"{task}-{variant}-seed{seed}"
                    start = time.perf_counter()
                    error = train(config, seed, run_dir)
                    if error is not None:
                        results["failed"].append(
                            {"task": task, "variant": variant, "seed": seed, "error": error}
                        )
                        print(
                            f"{task} {variant} seed {seed}: FAILED\n{error[-1500:]}",
                            file=sys.stderr,
                        )
                        continue
                    summary = json.loads((run_dir / "summary.json").read_text())
                    rows = read_metrics(run_dir)
                    data["runs"][variant].append(
                        {
                            "seed": seed,
                            "curve": curve(rows),
                            "summary": summary,
                            "speed": speed(rows, summary),
                        }
                    )
                    print(
                        f"{task} {variant} seed {seed}: eval {summary['final_eval_return']:.1f} in "
                        f"{time.perf_counter() - start:.0f} s ({summary['train_steps_per_s']:,.0f} steps/s)",
                        file=sys.stderr,
                        flush=True,
                    )
                if args.json:  # after every variant: a long benchmark keeps what it has
                    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot:
        plot(results, args.plot)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
