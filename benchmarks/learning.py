"""Learning-quality benchmark: experiments × seeds, in parallel processes.

Runs ``trpo-tf train`` for every (experiment, seed) pair that has no
``summary.json`` yet (so an interrupted benchmark resumes where it stopped),
then writes a markdown table with the final deterministic eval return per seed,
mean ± std, and whether each experiment reached its target.

    python benchmarks/learning.py experiments/cartpole.yaml:500 \\
        experiments/pendulum.yaml:-250 --seeds 0 1 2 --out benchmarks/results/learning

An argument ``PATH:TARGET`` sets the pass threshold for that experiment (a seed
passes when its final eval return ≥ TARGET).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml


def _run(experiment: Path, seed: int, run_dir: Path, extra: list[str]) -> dict:
    summary = run_dir / "summary.json"
    if not summary.exists():
        if run_dir.exists():
            # An interrupted run: start that seed over.
            for child in sorted(run_dir.rglob("*"), reverse=True):
                child.unlink() if child.is_file() else child.rmdir()
            run_dir.rmdir()
        log = run_dir.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment)]
        command += ["--seed", str(seed), "--run-dir", str(run_dir), "--log-every", "10"]
        for override in extra:
            command += ["--set", override]
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
        with open(log, "w") as handle:
            code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        if code != 0:
            return {"seed": seed, "error": f"exit status {code}, see {log}"}
    result = json.loads(summary.read_text())
    result["seed"] = seed
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", help="PATH[:TARGET]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    parser.add_argument("--report", type=Path, default=Path("docs/benchmarks/learning.md"))
    args = parser.parse_args()

    jobs = []
    for spec in args.experiments:
        path, _, target = spec.partition(":")
        experiment = Path(path)
        name = yaml.safe_load(experiment.read_text()).get("name", experiment.stem)
        for seed in args.seeds:
            jobs.append((name, experiment, float(target) if target else None, seed))

    start = time.time()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [
            (
                name,
                experiment,
                target,
                pool.submit(_run, experiment, seed, args.out / name / f"seed{seed}", args.set),
            )
            for name, experiment, target, seed in jobs
        ]
        results: dict[str, dict] = {}
        for name, experiment, target, future in futures:
            entry = results.setdefault(
                name, {"experiment": str(experiment), "target": target, "seeds": []}
            )
            entry["seeds"].append(future.result())

    lines = [
        "# Learning benchmark",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"wall time {time.time() - start:.0f} s for this invocation (runs already done are reused).",
        "Final deterministic eval return of each seed (10 episodes, end of the step budget).",
        "",
        "| experiment | env steps | seeds | final eval return per seed | mean ± std | steps/s | target | passed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    all_passed = True
    for name, entry in results.items():
        done = [s for s in entry["seeds"] if "error" not in s]
        returns = np.array([s["final_eval_return"] for s in done])
        target = entry["target"]
        passed = sum(r >= target for r in returns) if target is not None else None
        if target is not None and passed < len(entry["seeds"]):
            all_passed = False
        per_seed = ", ".join(f"{r:.1f}" for r in returns) or "-"
        errors = [s for s in entry["seeds"] if "error" in s]
        if errors:
            per_seed += f" ({len(errors)} failed)"
        steps = int(np.mean([s["env_steps"] for s in done])) if done else 0
        sps = np.mean([s["steps_per_s"] for s in done]) if done else 0.0
        stat = f"{returns.mean():.1f} ± {returns.std():.1f}" if done else "-"
        n_seeds = len(entry["seeds"])
        target_text = "-" if target is None else f"≥ {target:g}"
        passed_text = "-" if passed is None else f"{passed}/{n_seeds}"
        lines.append(
            f"| {name} | {steps:,d} | {len(entry['seeds'])} | {per_seed} | {stat} | {sps:,.0f} | "
            f"{target_text} | "
            f"{passed_text} |"
        )
    report = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report)
    print(report)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
