"""Async-runner ablation: sync vs async (β-corrected) vs async without correction.

For every environment × seed × variant (run one at a time, variants interleaved
so that a busy machine slows them alike) it trains through the CLI, then writes
``docs/benchmarks/async.md`` with final eval return, wall-clock and env steps
to the target, training throughput, policy lag, importance-weight ESS and the
dropped fraction, and a learning-curve plot ``docs/benchmarks/async.png``.
Finished runs (with a ``summary.json``) are reused, so an interrupted benchmark
resumes where it stopped.

    python benchmarks/async.py --envs cartpole pendulum halfcheetah --seeds 0 1 2

Variants: ``sync`` (runner.kind sync), ``async`` (2 worker processes,
max_policy_lag 1, surrogate divided by the stored β) and ``async-no-correction``
(the same data, trainer.behavior_correction false: β treated as π_old).
HalfCheetah-v5 is a throughput comparison (short budget, sync vs async).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COMMON = ["checkpoint.every=0", "checkpoint.every_s=0", "tracking.tensorboard=false"]
ASYNC = ["runner.kind=async", "runner.workers=2", "runner.max_policy_lag=1"]
VARIANTS = {
    "sync": ["runner.kind=sync"],
    "async": ASYNC,
    "async-no-correction": [*ASYNC, "trainer.behavior_correction=false"],
}
ENVS = {
    "cartpole": {
        "experiment": "experiments/cartpole.yaml",
        "target": 500.0,
        "set": ["eval.every=5"],
        "variants": list(VARIANTS),
    },
    "pendulum": {
        "experiment": "experiments/pendulum.yaml",
        "target": -250.0,
        "set": ["eval.every=5"],
        "variants": list(VARIANTS),
    },
    "halfcheetah": {
        "experiment": "experiments/mujoco/halfcheetah.yaml",
        "target": None,
        "set": [
            "env.n_envs=8",
            "trainer.total_steps=102400",
            "eval.every=1000",
            "eval.episodes=2",
        ],
        "variants": ["sync", "async"],
    },
}


def _run(env: str, variant: str, seed: int, run_dir: Path, extra: list[str]) -> dict:
    summary = run_dir / "summary.json"
    if not summary.exists():
        if run_dir.exists():
            for child in sorted(run_dir.rglob("*"), reverse=True):
                child.unlink() if child.is_file() else child.rmdir()
            run_dir.rmdir()
        spec = ENVS[env]
        command = [sys.executable, "-m", "trpo_tf.cli", "train", spec["experiment"]]
        command += ["--seed", str(seed), "--run-dir", str(run_dir), "--log-every", "10"]
        for override in [*COMMON, *spec["set"], *extra, *VARIANTS[variant]]:
            command += ["--set", override]
        log = run_dir.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        load_before = os.getloadavg()[0]
        child_env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
        with open(log, "w") as handle:
            code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=child_env)
        if code != 0:
            return {"error": f"exit status {code}, see {log}"}
        result = json.loads(summary.read_text())
        result["load_before"] = load_before
        result["load_after"] = os.getloadavg()[0]
        summary.write_text(json.dumps(result, indent=2))
    return json.loads(summary.read_text())


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _number(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", "None", None) else float("nan")


def _first_reach(rows: list[dict[str, str]], target: float | None) -> tuple[float, float]:
    """(wall seconds, env steps) of the first eval with return ≥ target (NaN if never)."""
    if target is None:
        return float("nan"), float("nan")
    for row in rows:
        if _number(row, "eval_return") >= target:
            return _number(row, "wall_time_s"), _number(row, "env_steps")
    return float("nan"), float("nan")


def _summarize(env: str, variant: str, seeds: list[int], out: Path) -> dict:
    target = ENVS[env]["target"]
    entry: dict = {"env": env, "variant": variant, "seeds": [], "errors": []}
    for seed in seeds:
        run_dir = out / env / variant / f"seed{seed}"
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            entry["errors"].append(seed)
            continue
        # summary.json writes a NaN result (e.g. every eval episode NaN) as null.
        summary = {
            k: math.nan if v is None else v for k, v in json.loads(summary_path.read_text()).items()
        }
        rows = _metrics(run_dir)
        steady = rows[len(rows) // 5 :]  # skip the compile-heavy first iterations
        iteration_time = np.diff([_number(r, "wall_time_s") for r in steady])
        # Steps per iteration (a one-iteration run has no steady rate).
        batch = (
            _number(rows[1], "env_steps") - _number(rows[0], "env_steps")
            if len(rows) > 1
            else float("nan")
        )
        wall, steps = _first_reach(rows, target)
        entry["seeds"].append(
            {
                "seed": seed,
                "final": summary["final_eval_return"],
                "steps_per_s": summary["train_steps_per_s"],
                "steady_steps_per_s": batch / np.median(iteration_time)
                if iteration_time.size
                else float("nan"),
                "wall_to_target": wall,
                "steps_to_target": steps,
                "lag": float(np.mean([_number(r, "policy_lag_mean") for r in rows])),
                "ess": float(np.mean([_number(r, "is_ess") for r in rows])),
                "dropped": float(np.mean([_number(r, "dropped_fraction") for r in rows])),
                "load": summary.get("load_before", float("nan")),
                "curve": [
                    (_number(r, "env_steps"), _number(r, "eval_return"))
                    for r in rows
                    if r.get("eval_return") not in ("", None)
                ],
            }
        )
    return entry


def _fmt(values: list[float], digits: int = 1) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "—"
    return f"{np.mean(finite):,.{digits}f}"


def _report(
    entries: list[dict],
    extra: list[str],
    wall: float,
    report: Path,
    png: Path,
    probe: list[str],
) -> None:
    lines = [
        "# Async runner ablation",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; this invocation took {wall:.0f} s (finished runs are "
        "reused). Runs were sequential, variants interleaved per seed; the machine is shared, "
        "so the 1-minute load average before each run is listed.",
        "",
        "Variants: **sync** (learner steps the envs), **async** (2 worker processes, "
        "max_policy_lag 1, surrogate divided by the stored β), **async-no-correction** "
        "(same, but trainer.behavior_correction false: β's samples treated as π_old's). "
        "Experiment YAMLs as in `experiments/`, checkpoints off, eval every 5 iterations "
        "(HalfCheetah: throughput only, n_envs 8, 102,400 steps)."
        + (f" Extra overrides: `{' '.join(extra)}`." if extra else ""),
        "",
        "| env | variant | final eval return per seed | mean | reached target | "
        "wall s to target | env steps to target | steps/s (train) | steps/s (steady) | "
        "policy lag | IS ESS | dropped | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        runs = entry["seeds"]
        if not runs:
            continue
        target = ENVS[entry["env"]]["target"]
        finals = [r["final"] for r in runs]
        reached = sum(np.isfinite(r["wall_to_target"]) for r in runs)
        lines.append(
            f"| {entry['env']} | {entry['variant']} | "
            + ", ".join(f"{v:.1f}" for v in finals)
            + f" | {np.mean(finals):.1f} | "
            + (f"{reached}/{len(runs)} (≥ {target:g})" if target is not None else "—")
            + f" | {_fmt([r['wall_to_target'] for r in runs])}"
            + f" | {_fmt([r['steps_to_target'] for r in runs], 0)}"
            + f" | {_fmt([r['steps_per_s'] for r in runs], 0)}"
            + f" | {_fmt([r['steady_steps_per_s'] for r in runs], 0)}"
            + f" | {_fmt([r['lag'] for r in runs], 2)}"
            + f" | {_fmt([r['ess'] for r in runs], 3)}"
            + f" | {_fmt([r['dropped'] for r in runs], 3)}"
            + f" | {_fmt([r['load'] for r in runs], 2)} |"
        )
        if entry["errors"]:
            lines.append(f"| | (missing seeds: {entry['errors']}) | | | | | | | | | | | |")
    lines += [
        "",
        "Columns: *wall s / env steps to target* — first evaluation at or above the target "
        "(mean over the seeds that reached it; wall time includes evaluation); *steps/s "
        "(train)* — env steps per second of wall time excluding evaluation, start-up and "
        "compilation included; *steps/s (steady)* — one batch over the median iteration time "
        "after the first fifth of the run; *policy lag* — mean versions between π_old and β; "
        "*IS ESS* — (Σw)²/(nΣw²) of w = π_old/β; *dropped* — fraction of collected steps "
        "discarded as too stale or lost.",
        "",
        f"![learning curves]({png.name})",
        "",
        *probe,
    ]
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines))
    _plot(entries, png)


def _plot(entries: list[dict], png: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    envs = [env for env in ENVS if any(e["env"] == env and e["seeds"] for e in entries)]
    if not envs:
        return
    figure = Figure(figsize=(5.0 * len(envs), 3.8))
    FigureCanvasAgg(figure)
    for column, env in enumerate(envs):
        axes = figure.add_subplot(1, len(envs), column + 1)
        mine = [e for e in entries if e["env"] == env and e["seeds"]]
        axes.set_title(env)
        if ENVS[env]["target"] is None:  # a throughput comparison
            rates = [[r["steady_steps_per_s"] for r in e["seeds"]] for e in mine]
            axes.bar([e["variant"] for e in mine], [np.mean(r) for r in rates], color="C0")
            for x, values in enumerate(rates):
                axes.plot([x] * len(values), values, "k.", markersize=5)
            axes.set_ylabel("env steps/s (steady state; dots: seeds)")
            continue
        for entry in mine:
            curves = [np.asarray(r["curve"]) for r in entry["seeds"] if r["curve"]]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            stacked = np.stack([c[:length] for c in curves])
            steps, returns = stacked[:, :, 0].mean(axis=0), stacked[:, :, 1]
            (line,) = axes.plot(steps, returns.mean(axis=0), marker=".", label=entry["variant"])
            axes.fill_between(
                steps, returns.min(axis=0), returns.max(axis=0), color=line.get_color(), alpha=0.15
            )
        axes.axhline(ENVS[env]["target"], color="grey", linestyle=":", linewidth=1)
        axes.set_xlabel("env steps")
        axes.set_ylabel("eval return (mean, min–max over seeds)")
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png, dpi=110)


PROBE_STEPS = 61440


def _tree_cpu() -> tuple[float, float]:
    """CPU seconds (user + sys) of this process, and of it plus all live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(name)] = int(fields[1])
        cpu[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    me, total = os.getpid(), 0.0
    for pid, seconds in cpu.items():
        ancestor = pid
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor, 0)
        total += seconds if ancestor == me else 0.0
    return cpu.get(me, 0.0), total


def _probe_one(variant: str, out: Path) -> None:
    """Train HalfCheetah in this process, timing CPU per iteration; print one JSON line."""
    from trpo_tf.config import load_experiment
    from trpo_tf.train import train

    class Probe:
        def __init__(self) -> None:
            self.samples: list[tuple[float, float, float]] = []

        def log(self, row: dict, step: int) -> None:
            self.samples.append((time.perf_counter(), *_tree_cpu()))

        def finish(self, summary: dict, path: Path) -> None:
            pass

    spec = ENVS["halfcheetah"]
    overrides = [*COMMON, *spec["set"], *VARIANTS[variant], f"trainer.total_steps={PROBE_STEPS}"]
    config = load_experiment(spec["experiment"], overrides)
    probe = Probe()
    train(config, out / f"probe-{variant}", quiet=True, trackers=[probe])
    steady = np.diff(np.asarray(probe.samples)[len(probe.samples) // 3 :], axis=0).mean(axis=0)
    batch = config.trainer.steps_per_iteration
    print(
        json.dumps(
            {
                "variant": variant,
                "wall_ms": 1000 * steady[0],
                "learner_cpu_ms": 1000 * steady[1],
                "total_cpu_ms": 1000 * steady[2],
                "steps_per_s": batch / steady[0],
                "idle_2core_bound": batch / max(steady[2] / 2, steady[1]),
                "load": os.getloadavg()[0],
            }
        )
    )


def _cpu_probe(out: Path, repeats: int) -> None:
    results = []
    for _ in range(repeats):
        for variant in ("sync", "async"):
            line = (
                subprocess.run(
                    [sys.executable, __file__, "--probe-one", variant, "--out", str(out)],
                    capture_output=True,
                    text=True,
                    env=dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled"),
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            results.append(json.loads(line))
            print(f"cpu probe: {results[-1]}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_probe.json").write_text(json.dumps(results, indent=2))


def _probe_lines(out: Path) -> list[str]:
    path = out / "cpu_probe.json"
    if not path.exists():
        return []
    lines = [
        "## Throughput and CPU per iteration (HalfCheetah-v5, n_envs 8, 2,048 steps/iteration)",
        "",
        "Measured in steady state (last two thirds of a "
        f"{PROBE_STEPS:,}-step run) from /proc: the learner process's CPU and that of the "
        "learner plus all its worker processes. *Idle 2-core bound* is the throughput the CPU "
        "work allows when both cores are free: one batch over max(total CPU / 2, learner CPU) "
        "(sync is one process, so its bound is its CPU time on one core).",
        "",
        "| variant | wall ms/iter | learner CPU ms/iter | total CPU ms/iter | measured steps/s | "
        "idle 2-core bound steps/s | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in json.loads(path.read_text()):
        lines.append(
            f"| {r['variant']} | {r['wall_ms']:.0f} | {r['learner_cpu_ms']:.0f} | "
            f"{r['total_cpu_ms']:.0f} | {r['steps_per_s']:,.0f} | {r['idle_2core_bound']:,.0f} | "
            f"{r['load']:.1f} |"
        )
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["cartpole", "pendulum"], choices=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/async"))
    parser.add_argument("--report", type=Path, default=Path("docs/benchmarks/async.md"))
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    parser.add_argument(
        "--cpu-probe", type=int, default=0, metavar="N", help="N sync/async CPU-probe pairs"
    )
    parser.add_argument("--probe-one", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report")
    args = parser.parse_args()

    if args.probe_one:
        _probe_one(args.probe_one, args.out)
        return 0
    start = time.time()
    if args.cpu_probe and not args.report_only:
        _cpu_probe(args.out, args.cpu_probe)
    if not args.report_only:
        for seed in args.seeds:
            for env in args.envs:
                for variant in ENVS[env]["variants"]:
                    run_dir = args.out / env / variant / f"seed{seed}"
                    t0 = time.time()
                    result = _run(env, variant, seed, run_dir, args.set)
                    print(
                        f"{env} {variant} seed {seed}: "
                        + (
                            result["error"]
                            if "error" in result
                            else f"final {result['final_eval_return']:.1f}, "
                            f"{result['train_steps_per_s']:.0f} steps/s"
                        )
                        + f" ({time.time() - t0:.0f} s)",
                        flush=True,
                    )
    entries = [
        _summarize(env, variant, args.seeds, args.out)
        for env in args.envs
        for variant in ENVS[env]["variants"]
    ]
    _report(
        entries,
        args.set,
        time.time() - start,
        args.report,
        args.report.with_suffix(".png"),
        _probe_lines(args.out),
    )
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
