"""A fresh-seed campaign: trpo_tf and sb3-contrib runs into one folder, resumable.

    python benchmarks/fresh_runs.py --envs Hopper-v5 Walker2d-v5 --seeds 100-104 \\
        --experiment mujoco/default --sides trpo sb3 --lanes 2 \\
        --sb3-python .venv-bench/bin/python
    python benchmarks/fresh_table.py          # the table, from the same folder

Each job writes ``FOLDER/<side>_<env>_s<seed>/`` (the names ``fresh_table.py`` reads;
``<env>`` is the id lower-cased, non-alphanumerics as ``_``) and ``FOLDER/<name>.log``.
The trpo_tf side runs ``trpo-tf train`` with the deterministic and the stochastic
policy evaluated every 25 iterations; ``--experiment`` names the experiment (default
``auto``: the env id itself, so ``trpo-tf train Hopper-v5`` picks the experiment shipped
for it, or the shared default ``mujoco/default`` for a Box env without one). The
sb3-contrib side runs ``sb3_zoo.py --matched-eval`` (rl-baselines3-zoo settings,
evaluated on trpo_tf's evaluation seeds) in ``--sb3-python``, an environment with
torch and sb3-contrib.

Started again, the campaign skips every finished job; a trpo_tf run that was stopped
(Ctrl-C or SIGTERM here sends it SIGTERM: it checkpoints its last iteration) continues from its
newest checkpoint with ``trpo-tf train --resume``; an sb3-contrib run that did not
finish starts over (it keeps no checkpoint). ``--lanes`` jobs run at a time.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sb3_zoo import slug  # noqa: E402 - the folder names sb3_zoo.py writes and fresh_table.py reads

from trpo_tf.tune.command import parse_seeds  # noqa: E402 - trpo-tf tune's --seeds syntax

SIDES = ("trpo", "sb3")


@dataclass(frozen=True)
class Job:
    """One run of the campaign: a side, an env, a seed."""

    side: str
    env_id: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.side}_{slug(self.env_id)}_s{self.seed}"


def plan(envs: list[str], seeds: Sequence[int], sides: list[str]) -> list[Job]:
    """Seed by seed, so that a campaign cut short has whole seeds on every env."""
    return [Job(side, env, seed) for seed in seeds for env in envs for side in sides]


def state(job: Job, folder: Path) -> str:
    """``done``, ``resume`` (a trpo_tf run with a checkpoint), or ``start``."""
    run_dir = folder / job.name
    if job.side == "sb3":
        return "done" if (run_dir / "result.json").is_file() else "start"
    if (run_dir / "summary.json").is_file():
        return "done"
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.glob("iter_*")):
        return "resume"
    return "start"


def command(job: Job, folder: Path, args: argparse.Namespace) -> list[str]:
    """The command line that runs (or continues) ``job``."""
    run_dir = folder / job.name
    if job.side == "sb3":
        return [
            args.sb3_python,
            str(HERE / "sb3_zoo.py"),
            "--env",
            job.env_id,
            "--seed",
            str(job.seed),
            "--steps",
            str(args.sb3_steps),
            "--episodes",
            "10",
            "--matched-eval",
            "--out",
            str(run_dir),
        ]
    train = [sys.executable, "-m", "trpo_tf.cli", "train"]
    if state(job, folder) == "resume":
        return [*train, "--resume", str(run_dir)]
    if args.experiment == "auto":
        experiment = [job.env_id]
    else:
        experiment = [args.experiment, "--set", f"env.id={job.env_id}"]
    sets = ["eval.stochastic=true", "eval.every=25", *args.set]
    return [
        *train,
        *experiment,
        "--seed",
        str(job.seed),
        *[part for item in sets for part in ("--set", item)],
        "--run-dir",
        str(run_dir),
    ]


def run_all(jobs: list[Job], folder: Path, args: argparse.Namespace) -> int:
    """Runs the jobs ``args.lanes`` at a time; exit status 0, 1 (a job failed) or 130.

    Jobs run in sessions of their own: a Ctrl-C reaches this process only, which sends
    each running job one SIGTERM (a second signal would make trpo-tf abandon its
    iteration instead of checkpointing it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    waiting = [job for job in jobs if state(job, folder) != "done"]
    running: dict[Job, subprocess.Popen] = {}
    failed = 0
    try:
        while waiting or running:
            while waiting and len(running) < args.lanes:
                job = waiting.pop(0)
                how = state(job, folder)
                if how == "start":
                    shutil.rmtree(folder / job.name, ignore_errors=True)
                log = open(folder / f"{job.name}.log", "a")  # noqa: SIM115 - closed with the job
                print(f"{time.strftime('%H:%M:%S')} {how} {job.name}", flush=True)
                running[job] = subprocess.Popen(
                    command(job, folder, args),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                log.close()
            time.sleep(2.0)
            for job, process in list(running.items()):
                if process.poll() is None:
                    continue
                del running[job]
                ok = process.returncode == 0 and state(job, folder) == "done"
                failed += not ok
                print(
                    f"{time.strftime('%H:%M:%S')} {'done' if ok else 'FAILED'} {job.name} "
                    f"(exit {process.returncode}; log {folder / job.name}.log)",
                    flush=True,
                )
    except KeyboardInterrupt:
        for process in running.values():
            process.send_signal(signal.SIGTERM)  # trpo-tf checkpoints, then exits 143
        for process in running.values():
            process.wait()
        print("stopped: run the same command again to continue", file=sys.stderr)
        return 130
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", required=True, help="gymnasium ids")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("100-104"))
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument(
        "--experiment",
        default="auto",
        help="trpo_tf's experiment (default auto: the env id, see trpo-tf train --help)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="for trpo_tf"
    )
    parser.add_argument("--folder", type=Path, default=Path("benchmarks/results/fresh"))
    parser.add_argument("--lanes", type=int, default=1, help="jobs at a time")
    parser.add_argument("--sb3-python", default=sys.executable)
    parser.add_argument("--sb3-steps", type=int, default=1_000_000)
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    jobs = plan(args.envs, args.seeds, args.sides)
    if args.dry_run:
        for job in jobs:
            how = state(job, args.folder)
            print(f"{how:6s} {' '.join(command(job, args.folder, args))}")
        return 0
    # SIGTERM stops the campaign as Ctrl-C does (and Ctrl-C works where a background
    # shell started it with SIGINT ignored).
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in handled}
    try:
        return run_all(jobs, args.folder, args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    raise SystemExit(main())
