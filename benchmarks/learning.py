"""Learning-quality benchmark: experiments × seeds, in parallel processes.

Runs ``trpo-tf train`` for every (experiment, seed) pair that has no
``summary.json`` yet, then writes a markdown report: per experiment the final
deterministic eval return of every seed, mean ± std, the interquartile mean with
a bootstrap 95% confidence interval over seeds, steps/s, whether it reached its
target, a learning-curve PNG (mean and spread across seeds), and, side by side,
sb3-contrib TRPO with the rl-baselines3-zoo hyperparameters (``--sb3``) and
published numbers with their source.

    python benchmarks/learning.py experiments/cartpole.yaml:500 \\
        experiments/pendulum.yaml:-250 --seeds 0 1 2 --out benchmarks/results/learning

An argument ``PATH:TARGET`` sets the pass threshold for that experiment (a seed
passes when its final eval return ≥ TARGET); without ``:TARGET`` the threshold
in :data:`TARGETS` for the experiment's env id is used, if there is one.

Rerunning the same command continues where it stopped: finished runs are
reused, a run with checkpoints but no ``summary.json`` continues with
``trpo-tf train --resume``, and a run without checkpoints starts over. The
sb3-contrib runs are cached the same way (``OUT/NAME/sb3_seedN/result.json``).
The report is rewritten whenever a run finishes; ``--report-only`` rewrites it
from what is on disk without training anything. One invocation at a time may
train into an ``--out`` directory (``OUT/.learning.lock`` holds its pid). Runs placed
in ``OUT/NAME/seedN`` by other means count as finished; say where they came from in
``OUT/PROVENANCE.md``, which the report quotes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf.tracking.compare import interquartile_mean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sb3_zoo import BENCH_PYTHON, run_sb3  # noqa: E402 - sibling module, needs sys.path

# Final deterministic eval return to reach at the experiment's budget, by env id.
TARGETS = {
    "HalfCheetah-v5": 4000.0,
    "Swimmer-v5": 360.0,
    "Ant-v5": 3000.0,
    "Humanoid-v5": 1500.0,
    "InvertedDoublePendulum-v5": 9000.0,
    "BipedalWalker-v3": 280.0,
    "LunarLander-v3": 150.0,
}
_SB3_DOCS = "sb3-contrib TRPO docs (MuJoCo -v3 envs, 1M steps, 3 seeds)"
_ZOO = "rl-baselines3-zoo benchmark (sb3-contrib TRPO)"
# Published TRPO returns (value as text, source). Older env versions where noted.
PUBLISHED = {
    "HalfCheetah-v5": ("1803 ± 46", _SB3_DOCS),
    "Swimmer-v5": ("359 ± 2", _SB3_DOCS),
    "Ant-v5": ("3554 ± 591", _SB3_DOCS),
    "Humanoid-v5": ("~810", "Tianshou MuJoCo benchmark (Humanoid-v3, 1M steps)"),
    "BipedalWalker-v3": ("182", _ZOO),
    "LunarLander-v3": ("133", _ZOO),
}
BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Experiment:
    """One experiment of the benchmark, as named on the command line."""

    name: str
    path: Path
    env_id: str
    total_steps: int
    target: float | None


def load_experiment(spec: str, overrides: list[str]) -> Experiment:
    """``PATH[:TARGET]`` (+ ``--set`` overrides) → :class:`Experiment`.

    The name, env id and budget come from the resolved experiment, so an
    override of ``trainer.total_steps`` is also the sb3-contrib budget.
    """
    from trpo_tf.config import load_experiment as load_config

    path, _, target = spec.partition(":")
    config = load_config(path, overrides)
    return Experiment(
        name=config.name,
        path=Path(path),
        env_id=config.env.id,
        total_steps=config.trainer.total_steps,
        target=float(target) if target else TARGETS.get(config.env.id),
    )


def seed_dir(out: Path, experiment: Experiment, seed: int) -> Path:
    return out / experiment.name / f"seed{seed}"


def sb3_dir(out: Path, experiment: Experiment, seed: int) -> Path:
    return out / experiment.name / f"sb3_seed{seed}"


def _has_checkpoint(run_dir: Path) -> bool:
    checkpoints = run_dir / "checkpoints"
    return checkpoints.is_dir() and any(p.name.startswith("iter_") for p in checkpoints.iterdir())


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
    path.rmdir()


def run_trpo_tf(experiment: Experiment, seed: int, run_dir: Path, extra: list[str]) -> dict:
    """Train one seed unless ``summary.json`` exists; resume from a checkpoint if any."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        log = run_dir.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "trpo_tf.cli", "train"]
        if run_dir.exists() and _has_checkpoint(run_dir):
            command += ["--resume", str(run_dir)]
            mode = "a"
        else:
            if run_dir.exists():
                _remove_tree(run_dir)  # interrupted before its first checkpoint
            command += [str(experiment.path), "--seed", str(seed), "--run-dir", str(run_dir)]
            for override in extra:
                command += ["--set", override]
            mode = "w"
        command += ["--log-every", "10"]
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
        with open(log, mode) as handle:
            handle.write(f"$ {shlex.join(command)}\n")
            handle.flush()
            code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        if code != 0 or not summary.exists():
            return {"seed": seed, "error": f"exit status {code}, see {log}"}
    result = json.loads(summary.read_text())
    result["seed"] = seed
    return result


def run_reference(experiment: Experiment, seed: int, out: Path, python: Path) -> dict:
    """sb3-contrib TRPO (zoo hyperparameters) on the same env id and budget; cached."""
    try:
        return run_sb3(experiment.env_id, seed, experiment.total_steps, out, python)
    except (RuntimeError, OSError) as error:
        return {"seed": seed, "error": str(error).splitlines()[0]}


def bootstrap_iqm_ci(
    values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% CI of the IQM, resampling seeds with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    samples = rng.choice(values, size=(resamples, values.size), replace=True)
    iqms = np.array([interquartile_mean(row) for row in samples])
    low, high = np.percentile(iqms, [2.5, 97.5])
    return float(low), float(high)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def collect(
    experiments: list[Experiment], seeds: list[int], out: Path, sb3_seeds: list[int]
) -> dict[str, dict]:
    """Everything finished on disk, per experiment (runs still going count as pending)."""
    results: dict[str, dict] = {}
    for experiment in experiments:
        runs = []
        for seed in seeds:
            summary = _read_json(seed_dir(out, experiment, seed) / "summary.json")
            # summary.json writes a NaN result (e.g. every eval episode NaN) as null.
            summary = summary and {k: math.nan if v is None else v for k, v in summary.items()}
            runs.append({**summary, "seed": seed} if summary else {"seed": seed, "pending": True})
        references = []
        for seed in sb3_seeds:
            result = _read_json(sb3_dir(out, experiment, seed) / "result.json")
            if result:
                references.append(result)
        done = [r for r in runs if "final_eval_return" in r]
        finals = np.array([r["final_eval_return"] for r in done], dtype=float)
        low, high = bootstrap_iqm_ci(finals)
        results[experiment.name] = {
            "experiment": str(experiment.path),
            "env_id": experiment.env_id,
            "total_steps": experiment.total_steps,
            "target": experiment.target,
            "seeds": runs,
            "final_return_mean": float(finals.mean()) if finals.size else None,
            "final_return_std": float(finals.std()) if finals.size else None,
            "final_return_iqm": interquartile_mean(finals) if finals.size else None,
            "final_return_iqm_ci95": [low, high] if finals.size else None,
            "steps_per_s": float(np.mean([r["steps_per_s"] for r in done])) if done else None,
            "sb3": references,
            "published": PUBLISHED.get(experiment.env_id),
        }
    return results


def plot_curves(
    experiments: list[Experiment], seeds: list[int], out: Path, sb3_seeds: list[int], where: Path
) -> dict[str, Path]:
    """``where/learning_NAME.png`` per experiment with finished runs (sb3 run beside them)."""
    from trpo_tf.tracking.plots import plot_comparison

    pngs = {}
    for experiment in experiments:
        runs = [seed_dir(out, experiment, s) for s in seeds]
        runs = [run for run in runs if (run / "summary.json").is_file()]
        if not runs:
            continue
        references = [sb3_dir(out, experiment, s) for s in sb3_seeds]
        runs += [run for run in references if (run / "result.json").is_file()]
        png = where / f"learning_{experiment.name}.png"
        try:
            pngs[experiment.name] = plot_comparison(runs, png)
        except Exception as error:  # noqa: BLE001 - a plot must not lose the table
            print(f"learning curve of {experiment.name} failed: {error}", file=sys.stderr)
    return pngs


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.machine()}"


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' (with uncommitted changes)' if dirty else ''}"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.{digits}f}"


def _episodes(runs: Iterable[dict]) -> str:
    """How many evaluation episodes finished runs recorded: "10 episodes", "10 or 50 episodes"."""
    counts = sorted({int(r["eval_episodes"]) for r in runs if "eval_episodes" in r})
    return " or ".join(str(c) for c in counts) + " episodes" if counts else "episodes"


FRESH_SEEDS_FROM = 100
"""Seeds below this are for tuning; reported results use fresh ones (100-104)."""


def _tuning_seeds_note() -> list[str]:
    return [
        "**These are tuning seeds.** Seeds below 100 are the ones settings are tuned on (most",
        "runs here may be the tuning runs themselves), so this says how well the settings fit",
        "the tasks they were chosen on, not how they carry over. Results on seeds never used",
        "for tuning (100-104), with sb3-contrib TRPO on the same seeds, and the shared default",
        "beside each task's own experiment: [learning.md](learning.md).",
        "",
    ]


def render(
    results: dict[str, dict],
    pngs: dict[str, Path],
    report: Path,
    command: str,
    sb3: bool,
    provenance: str = "",
) -> str:
    """The markdown report (``provenance``: where runs not trained by this command came from)."""
    versions = ", ".join(
        f"{name} {_version(package)}"
        for name, package in (
            ("tensorflow", "tensorflow"),
            ("keras", "keras"),
            ("tensorflow-probability", "tensorflow-probability"),
            ("gymnasium", "gymnasium"),
            ("mujoco", "mujoco"),
            ("box2d", "box2d"),
            ("numpy", "numpy"),
        )
    )
    seeds = sorted({int(s["seed"]) for e in results.values() for s in e["seeds"]})
    lines = [
        "# Learning benchmark",
        "",
        *(_tuning_seeds_note() if seeds and max(seeds) < FRESH_SEEDS_FROM else []),
        f"Generated by `{command}`.",
        "",
        f"- Machine: {_machine()}; CPU only.",
        f"- Python {platform.python_version()}; {versions}.",
        f"- trpo_tf commit: `{_git_commit()}`.",
        f"- Written {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        "Final return: the mean deterministic return over the "
        f"{_episodes(s for e in results.values() for s in e['seeds'])} of the policy",
        "at the end of each seed's step budget (not the best point of the run). Across seeds:",
        "mean ± std (population), and the interquartile mean (IQM; with 3 seeds it equals the",
        f"mean) with a percentile bootstrap 95% CI ({BOOTSTRAP_RESAMPLES:,d} resamples of the",
        "seeds). steps/s: env steps / wall time of the whole run (periodic evaluation",
        "included); runs share the machine `--workers` at a time (the command above;",
        f"default: the CPU count, {os.cpu_count()} here).",
        "",
        "| experiment | env | env steps | final return per seed | mean ± std | IQM [95% CI] | "
        "steps/s | target | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        done = [s for s in entry["seeds"] if "final_eval_return" in s]
        per_seed = ", ".join(_fmt(s["final_eval_return"]) for s in done) or "-"
        pending = len(entry["seeds"]) - len(done)
        if pending:
            per_seed += f" ({pending} of {len(entry['seeds'])} not finished)"
        steps = int(np.mean([s["env_steps"] for s in done])) if done else entry["total_steps"]
        if done:
            stat = f"{_fmt(entry['final_return_mean'])} ± {_fmt(entry['final_return_std'])}"
            low, high = entry["final_return_iqm_ci95"]
            iqm = f"{_fmt(entry['final_return_iqm'])} [{_fmt(low)}, {_fmt(high)}]"
        else:
            stat = iqm = "-"
        target = entry["target"]
        if target is None:
            target_text = passed_text = "-"
        else:
            target_text = f"≥ {target:g}"
            passed = sum(s["final_eval_return"] >= target for s in done)
            passed_text = f"{passed}/{len(entry['seeds'])}"
        lines.append(
            f"| {name} | {entry['env_id']} | {steps:,d} | {per_seed} | {stat} | {iqm} | "
            f"{_fmt(entry['steps_per_s'], 0)} | {target_text} | {passed_text} |"
        )

    if provenance.strip():
        lines += ["", "## Where the runs come from", "", provenance.strip()]
    lines += [
        "",
        "## Side by side",
        "",
        "sb3-contrib TRPO: rl-baselines3-zoo hyperparameters (`hyperparams/trpo.yml`; the MuJoCo",
        "-v4 entries for -v5 envs, the zoo's defaults where it has no entry), same env id, same",
        "step budget, the seeds listed, run here by `benchmarks/sb3_zoo.py` (torch, one",
        "thread), evaluated the same way ("
        f"{_episodes(r for e in results.values() for r in e['sb3'])}, deterministic, at the end",
        "of the budget).",
        "Published numbers are for older env versions where noted and are not re-measured.",
        "",
        "| env | trpo_tf mean ± std | sb3-contrib (zoo, here) | sb3-contrib steps/s | "
        "published TRPO | source |",
        "|---|---|---|---|---|---|",
    ]
    for entry in results.values():
        ours = (
            f"{_fmt(entry['final_return_mean'])} ± {_fmt(entry['final_return_std'])}"
            if entry["final_return_mean"] is not None
            else "-"
        )
        references = entry["sb3"]
        if references:
            theirs = ", ".join(
                f"{_fmt(r['eval_return'])} (seed {r['seed']}, {r['zoo_key']} settings)"
                for r in references
            )
            speed = ", ".join(_fmt(r["steps_per_s"], 0) for r in references)
        else:
            theirs = speed = "not run" if not sb3 else "pending"
        published, source = entry["published"] or ("-", "-")
        lines.append(
            f"| {entry['env_id']} | {ours} | {theirs} | {speed} | {published} | {source} |"
        )
    versions_sb3 = next((r["versions"] for e in results.values() for r in e["sb3"]), None)
    if versions_sb3:
        lines += [
            "",
            "sb3-contrib runs: " + ", ".join(f"{k} {v}" for k, v in versions_sb3.items()) + ".",
        ]

    if pngs:
        lines += [
            "",
            "## Learning curves",
            "",
            "Training return (mean of the last 100 episodes) against env steps: mean across",
            "seeds, ±1 std band and min–max band; markers are the deterministic evaluations.",
            "sb3-contrib's seeds, where run, are drawn the same way (the legend counts them),",
            "with their final evaluations.",
        ]
        for name, png in pngs.items():
            relative = os.path.relpath(png, report.parent)
            lines += ["", f"### {name}", "", f"![{name} learning curve]({relative})"]
    notes = report.parent / "learning_notes.md"
    if notes.is_file():
        lines += [
            "",
            "## Tuning",
            "",
            f"How the experiment settings were chosen (ablations): [{notes.name}]({notes.name}).",
        ]
    return "\n".join(lines) + "\n"


class Reporter:
    """Rewrites the report and ``results.json`` from disk; safe to call from threads."""

    def __init__(self, args: argparse.Namespace, experiments: list[Experiment], command: str):
        self.args = args
        self.experiments = experiments
        self.command = command
        self.lock = threading.Lock()

    def write(self, quiet: bool = True) -> dict[str, dict]:
        args = self.args
        with self.lock:
            sb3_seeds = args.sb3_seeds if args.sb3 else []
            results = collect(self.experiments, args.seeds, args.out, sb3_seeds)
            where = args.plots or args.report.parent
            pngs = plot_curves(self.experiments, args.seeds, args.out, sb3_seeds, where)
            provenance_file = args.out / "PROVENANCE.md"
            provenance = provenance_file.read_text() if provenance_file.is_file() else ""
            text = render(results, pngs, args.report, self.command, args.sb3, provenance)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=2))
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(text)
            if not quiet:
                print(text)
            return results


def train_all(
    args: argparse.Namespace, experiments: list[Experiment], reporter: Reporter
) -> list[dict]:
    """Per experiment, every missing trpo_tf run and (``--sb3``) reference run; the errors.

    Reference runs are queued right after their experiment's own runs, so a suite cut
    short still has side-by-side numbers for the experiments it finished.
    """
    with ThreadPoolExecutor(max_workers=args.workers) as pool:

        def job(fn: Any, *job_args: Any) -> Any:
            def run() -> dict:
                result = fn(*job_args)
                reporter.write()
                return result

            return pool.submit(run)

        futures = []
        for e in experiments:
            futures += [
                job(run_trpo_tf, e, seed, seed_dir(args.out, e, seed), args.set)
                for seed in args.seeds
            ]
            if args.sb3:
                futures += [
                    job(run_reference, e, seed, sb3_dir(args.out, e, seed), args.sb3_python)
                    for seed in args.sb3_seeds
                ]
        return [r for r in (f.result() for f in futures) if "error" in r]


def _acquire_lock(out: Path) -> Path:
    """``OUT/.learning.lock`` holding this pid; exit while another live benchmark holds it."""
    lock = out / ".learning.lock"
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pass  # left behind by a benchmark that was killed
        except PermissionError:
            sys.exit(f"another benchmark (pid {pid}) is writing {out}; wait for it to end")
        else:
            sys.exit(f"another benchmark (pid {pid}) is writing {out}; wait for it to end")
    out.mkdir(parents=True, exist_ok=True)
    lock.write_text(str(os.getpid()))
    return lock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", help="PATH[:TARGET]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--set", action="append", default=[], help="override for every run")
    parser.add_argument("--report", type=Path, default=Path("docs/benchmarks/learning_tuning.md"))
    parser.add_argument(
        "--plots", type=Path, help="where the learning_NAME.png go (default: beside --report)"
    )
    parser.add_argument(
        "--sb3",
        action="store_true",
        help="also run sb3-contrib TRPO with the zoo hyperparameters (after each experiment's runs)",
    )
    parser.add_argument("--sb3-seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--sb3-python",
        type=Path,
        default=Path(os.environ.get("TRPO_TF_BENCH_PYTHON", BENCH_PYTHON)),
        help="python of the environment with sb3-contrib and rl_zoo3 (default .venv-bench)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the report from disk; train nothing"
    )
    args = parser.parse_args()

    experiments = [load_experiment(spec, args.set) for spec in args.experiments]
    names = [e.name for e in experiments]
    if len(set(names)) != len(names):
        parser.error(f"two experiments share a name: {names}")
    command = "python benchmarks/learning.py " + shlex.join(sys.argv[1:])
    command = command.replace(" --report-only", "")
    reporter = Reporter(args, experiments, command)
    if args.report_only:
        results = reporter.write(quiet=False)
        return 0 if _all_passed(results) else 1

    lock = _acquire_lock(args.out)
    start = time.time()
    try:
        errors = train_all(args, experiments, reporter)
    finally:
        lock.unlink(missing_ok=True)
    for error in errors:
        print(f"failed: {error}", file=sys.stderr)
    results = reporter.write(quiet=False)
    print(f"wall time {time.time() - start:.0f} s (finished runs were reused)")
    return 0 if _all_passed(results) and not errors else 1


def _all_passed(results: dict[str, dict]) -> bool:
    for entry in results.values():
        target = entry["target"]
        if target is None:
            continue
        done = [s for s in entry["seeds"] if "final_eval_return" in s]
        if len(done) < len(entry["seeds"]) or any(s["final_eval_return"] < target for s in done):
            return False
    return True


if __name__ == "__main__":
    sys.exit(main())
