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

``--scaling`` instead measures the parts of the throughput-vs-workers model of
``docs/distributed.md`` one at a time, each process on a core of its own: a
worker's env steps per second (one 256-step segment of 4 envs with the numpy
policy), the learner's serial cost per segment (transport, normalization,
assembly; through a pipe and through Ray), and the learner's update time for
batches of 2,048 to 32,768 steps (sync runs, value fit not overlapped); then
prints the model's prediction for 1 to 128 workers (JSON with ``--scaling-out``).

    python benchmarks/async.py --scaling --scaling-out benchmarks/results/scaling.json
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


# -- --scaling: the parts of the throughput model (docs/distributed.md) ----------------------

SCALING_ENVS = {"CartPole-v1": {}, "Pendulum-v1": {"normalize_obs": True, "normalize_reward": True}}
SEGMENT_ENVS, SEGMENT_T = 4, 64  # one worker's segment: 4 envs × 64 steps = 256 steps
SCALING_BATCHES = (256, 2048, 8192, 32768)
SCALING_WORKERS = (1, 2, 8, 32, 128)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _scaling_parts(env_id: str, normalize: dict, repeats: int) -> dict:
    """A worker's segment time and the learner's serial cost per segment (seconds)."""
    import pickle

    import gymnasium as gym

    from trpo_tf.config import experiment_from_dict
    from trpo_tf.config.build import build_policy
    from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
    from trpo_tf.rollout.async_runner import AsyncRunner
    from trpo_tf.rollout.async_worker import RolloutWorker
    from trpo_tf.rollout.numpy_actor import NumpyActor
    from trpo_tf.rollout.segment import EnvFactory, WorkerSpec
    from trpo_tf.rollout.segment_batch import assemble_rollout

    probe = gym.make(env_id)
    obs_dim = int(np.prod(probe.observation_space.shape))
    config = experiment_from_dict({"env": {"id": env_id, **normalize}})
    policy = build_policy(config, obs_dim, probe.action_space)
    actor = NumpyActor(policy, seed=0)
    obs_norm = ObservationNormalizer((obs_dim,), bool(normalize.get("normalize_obs")))
    snapshot = actor.snapshot().with_version(1, obs_norm if obs_norm.enabled else None)
    spec = WorkerSpec(EnvFactory(env_id), env_id, SEGMENT_ENVS, SEGMENT_T, seed=0)
    worker = RolloutWorker(spec, 0, 0, snapshot)
    for _ in range(2):
        worker.run_segment()
    segment_s = _median_time(worker.run_segment, repeats)
    segment = worker.run_segment()
    wire = pickle.dumps(segment, protocol=pickle.HIGHEST_PROTOCOL)
    send_s = _median_time(lambda: pickle.dumps(segment, protocol=pickle.HIGHEST_PROTOCOL), repeats)
    receive_s = _median_time(lambda: pickle.loads(wire), repeats)
    # The learner's own work on an arrived segment: AsyncRunner's methods on a bare runner.
    runner = AsyncRunner.__new__(AsyncRunner)
    runner.spec, runner.obs_norm, runner.total_env_steps = spec, obs_norm, 0
    runner.reward_norm = RewardNormalizer(
        SEGMENT_ENVS, 0.99, bool(normalize.get("normalize_reward"))
    )
    runner.nonfinite_replaced = 0
    normalize_s = _median_time(lambda: runner._normalize(segment), repeats)
    rewards = runner._normalize(segment)
    group = [(segment, rewards)] * 8
    assemble_s = _median_time(
        lambda: assemble_rollout(
            group,
            dropped=0,
            episode_returns=[segment.episode_returns],
            episode_lengths=[segment.episode_lengths],
            nonfinite_replaced=0,
        ),
        repeats,
    ) / len(group)
    worker.close()
    return {
        "segment_steps": segment.num_steps,
        "segment_s": segment_s,
        "steps_per_s": segment.num_steps / segment_s,
        "segment_bytes": len(wire),
        "worker_send_s": send_s,
        "learner_receive_s": receive_s,
        "learner_normalize_s": normalize_s,
        "learner_assemble_s": assemble_s,
        "snapshot_bytes": len(pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)),
        "_segment": wire,
        "_snapshot": pickle.dumps(snapshot),
    }


def _ray_call_cost(segment_wire: bytes, snapshot_wire: bytes, calls: int) -> dict:
    """The learner process's CPU seconds per Ray actor call returning a segment, and per
    policy sent to one actor (a put shared by all, then one call each)."""
    import pickle

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:

        @ray.remote(num_cpus=1)
        class Echo:
            def __init__(self, wire: bytes) -> None:
                self.segment = pickle.loads(wire)

            def run_segment(self):
                return self.segment

            def set_policy(self, snapshot) -> None:
                self.snapshot = snapshot

        actor = Echo.remote(segment_wire)
        ray.get(actor.run_segment.remote())  # started
        cpu0 = time.process_time()
        for _ in range(calls):
            ray.get(actor.run_segment.remote())
        call_s = (time.process_time() - cpu0) / calls
        snapshot = pickle.loads(snapshot_wire)
        ref = ray.put(snapshot)
        cpu0 = time.process_time()
        for _ in range(calls):
            actor.set_policy.remote(ref)
        ray.get(actor.run_segment.remote())
        publish_s = (time.process_time() - cpu0) / calls
    finally:
        ray.shutdown()
    return {"ray_call_cpu_s": call_s, "ray_publish_cpu_s": publish_s}


def _update_time(env_id: str, normalize: dict, batch: int, out: Path, runs: int = 2) -> float:
    """Median learner time per iteration of sync runs (policy step + value fit, not
    overlapped), over ``runs`` runs past their first two (tracing) iterations."""
    times: list[float] = []
    for run in range(runs):
        run_dir = out / "update" / f"{env_id}-{batch}-{run}"
        if not (run_dir / "metrics.csv").exists():
            experiment = out / "update" / f"{env_id}-{batch}.yaml"
            experiment.parent.mkdir(parents=True, exist_ok=True)
            experiment.write_text(
                json.dumps(
                    {
                        "name": "scaling",
                        "env": {"id": env_id, "n_envs": 8, **normalize},
                        "trainer": {
                            "steps_per_iteration": batch,
                            "total_steps": 6 * batch,
                            "overlap_value_fit": False,
                        },
                        "eval": {"every": 1000, "episodes": 1},
                        "checkpoint": {"every": 0, "every_s": 0},
                        "tracking": {"tensorboard": False},
                    }
                )
            )
            child_env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
            command = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--quiet"]
            subprocess.run(command + ["--run-dir", str(run_dir)], check=True, env=child_env)
        times += [_number(row, "update_time_s") for row in _metrics(run_dir)[2:]]
    return float(np.median(times))


def _update_at(update: dict[int, float], batch: int) -> float:
    """U(batch): the measured update times, linear between them and beyond the last two."""
    sizes = sorted(update)
    if batch <= sizes[-1]:
        return float(np.interp(batch, sizes, [update[x] for x in sizes]))
    slope = (update[sizes[-1]] - update[sizes[-2]]) / (sizes[-1] - sizes[-2])
    return update[sizes[-1]] + slope * (batch - sizes[-1])


def _predict(parts: dict, update: dict[int, float], workers: int, lag: int, batch: int) -> dict:
    """Throughput of ``workers`` workers, each on a core of its own, and the learner on one.

    Per iteration the learner takes one segment of ``batch / workers`` steps from each
    worker and spends U(batch) + workers × c on its serial path (c: receiving,
    normalizing and assembling a segment, one Ray call and one policy sent); a worker
    spends S = segment steps / its rate + pickling per segment. With lag 0 the two
    alternate (τ = L + S); with lag 1 they overlap (τ = max(L, S)).
    """
    per_segment = (
        parts["learner_receive_s"]
        + parts["learner_normalize_s"] * (batch / workers) / parts["segment_steps"]
        + parts["learner_assemble_s"]
        + parts["ray_call_cpu_s"]
        + parts["ray_publish_cpu_s"]
    )
    learner = _update_at(update, batch) + workers * per_segment
    steps = batch / workers
    segment = (parts["segment_s"] + parts["worker_send_s"]) * steps / parts["segment_steps"]
    period = learner + segment if lag == 0 else max(learner, segment)
    return {
        "workers": workers,
        "lag": lag,
        "batch": batch,
        "learner_s": learner,
        "segment_s": segment,
        "steps_per_s": batch / period,
        "bound": "learner" if learner >= segment else "rollout",
        "worker_busy": segment / period,
        # A worker this slow or slower (env steps/s) would make this point rollout-bound.
        "rollout_bound_below_steps_per_s": steps / learner,
    }


def _scaling(out: Path, repeats: int, save: Path | None) -> None:
    results = {}
    for env_id, normalize in SCALING_ENVS.items():
        parts = _scaling_parts(env_id, normalize, repeats)
        parts.update(_ray_call_cost(parts.pop("_segment"), parts.pop("_snapshot"), 200))
        update = {batch: _update_time(env_id, normalize, batch, out) for batch in SCALING_BATCHES}
        segment = parts["segment_steps"]
        predictions = {
            "batch_grows": [
                _predict(parts, update, workers, lag, workers * segment)
                for lag in (0, 1)
                for workers in SCALING_WORKERS
            ],
            "batch_2048": [
                _predict(parts, update, workers, lag, 2048)
                for lag in (0, 1)
                for workers in SCALING_WORKERS
            ],
        }
        results[env_id] = {
            "parts": parts,
            "update_s": update,
            "predictions": predictions,
            "load_average": os.getloadavg()[0],
        }
        print(
            f"\n{env_id}: worker {parts['steps_per_s']:,.0f} steps/s "
            f"(segment {parts['segment_s'] * 1e3:.1f} ms + send {parts['worker_send_s'] * 1e3:.2f} ms, "
            f"{parts['segment_bytes'] / 1024:.0f} KiB); learner per segment: receive "
            f"{parts['learner_receive_s'] * 1e3:.2f} ms, normalize {parts['learner_normalize_s'] * 1e3:.2f} ms, "
            f"assemble {parts['learner_assemble_s'] * 1e3:.2f} ms, Ray call {parts['ray_call_cpu_s'] * 1e3:.2f} ms CPU, "
            f"publish {parts['ray_publish_cpu_s'] * 1e3:.2f} ms CPU"
        )
        print(
            "  update time (s) by batch: " + ", ".join(f"{b}: {t:.3f}" for b, t in update.items())
        )
        for entry in predictions["batch_grows"] + predictions["batch_2048"]:
            print(
                f"  lag {entry['lag']}, {entry['workers']:>3} workers: batch {entry['batch']:>6}, "
                f"learner {entry['learner_s'] * 1e3:7.1f} ms, segment {entry['segment_s'] * 1e3:6.1f} ms, "
                f"{entry['steps_per_s']:>9,.0f} steps/s ({entry['bound']}-bound, workers busy "
                f"{entry['worker_busy']:.0%}; rollout-bound below "
                f"{entry['rollout_bound_below_steps_per_s']:,.0f} steps/s per worker)"
            )
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(json.dumps(results, indent=2) + "\n")


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
    parser.add_argument(
        "--scaling", action="store_true", help="measure the throughput model's parts instead"
    )
    parser.add_argument("--scaling-out", type=Path, default=None, help="--scaling: JSON results")
    parser.add_argument("--repeats", type=int, default=20, help="--scaling: timings per median")
    args = parser.parse_args()

    if args.scaling:
        _scaling(args.out / "scaling", args.repeats, args.scaling_out)
        return 0

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
