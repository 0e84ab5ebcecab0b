"""Several seeds of one experiment into one parent directory.

``trpo-tf train EXP.yaml --seeds 0-4`` writes ``PARENT/seed_0`` ... ``PARENT/seed_4``,
each a complete run directory, either one after the other in this process or in
``--parallel N`` child processes (each child's output goes to ``PARENT/seed_N.log``,
and one aggregate progress line over all seeds is printed every few seconds).
At the end ``PARENT/learning_curve.png`` shows the mean and spread across seeds.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from trpo_tf.checkpoint import CheckpointManager
from trpo_tf.config.schema import SEED_MAX
from trpo_tf.errors import ConfigError, RunDirError

MAX_SEEDS = 1000
"""Most seeds one ``--seeds`` may name: each is a whole training run."""


def parse_seeds(spec: str) -> list[int]:
    """Seeds from ``"0-4"`` (inclusive range), ``"0,2,5"`` or a mix (``"0-2,7"``).

    Time and memory are linear in the number of seeds, which is checked before a
    range is expanded.

    Raises:
        ConfigError: empty items, non-integers, negative seeds or seeds of 2**32 and
            more (the ``seed`` key's range), a descending range, more than
            :data:`MAX_SEEDS` seeds, or a seed given twice.
    """
    seeds: list[int] = []
    seen: set[int] = set()
    for item in spec.split(","):
        item = item.strip()
        first, dash, last = item.partition("-")
        try:
            low, high = (int(first), int(last)) if dash else (int(item), int(item))
        except ValueError:
            raise ConfigError(
                f"--seeds: {item[:40]!r} is not a seed or a range of seeds; write e.g. 0-4 or 0,2,5"
            ) from None
        if high < low:  # outside the try: ConfigError is a ValueError too
            raise ConfigError(f"--seeds: range {item!r} is reversed; write {high}-{low}")
        if low < 0 or high > SEED_MAX:
            raise ConfigError(
                f"--seeds: seeds must be >= 0 and <= {SEED_MAX} (the range of the seed key), "
                f"got {item!r}"
            )
        if len(seeds) + (high - low + 1) > MAX_SEEDS:
            raise ConfigError(
                f"--seeds: {spec[:60]!r} names more than {MAX_SEEDS} seeds, each a whole "
                "training run; split them over several commands"
            )
        for seed in range(low, high + 1):
            if seed in seen:
                raise ConfigError(f"--seeds: {spec[:60]!r} names seed {seed} more than once")
            seen.add(seed)
            seeds.append(seed)
    return seeds


def seed_dir(parent: Path, seed: int) -> Path:
    return Path(parent) / f"seed_{seed}"


def check_free(parent: Path, seeds: Sequence[int]) -> None:
    """Raise :class:`RunDirError` when a seed's run directory already holds a run."""
    taken = [
        str(seed_dir(parent, s)) for s in seeds if (seed_dir(parent, s) / "metrics.csv").exists()
    ]
    if taken:
        raise RunDirError(
            f"{', '.join(taken)} already hold{'s' if len(taken) == 1 else ''} a run; "
            "pass another --run-dir or remove it"
        )


def train_sequential(
    experiment: str | Path,
    overrides: Sequence[str],
    seeds: Sequence[int],
    parent: Path,
    quiet: bool = False,
    progress_every: int = 1,
) -> int:
    """Train every seed in this process, one after the other; returns an exit status."""
    from trpo_tf.config import load_experiment
    from trpo_tf.train import train

    for seed in seeds:
        config = load_experiment(experiment, [*overrides, f"seed={seed}"])
        result = train(config, seed_dir(parent, seed), quiet=quiet, progress_every=progress_every)
        print(
            f"seed {seed}: {result.env_steps:,d} env steps in {result.wall_time_s:.1f} s; "
            f"eval return {result.final_eval_return:.2f} ± {result.final_eval_return_std:.2f}",
            flush=True,
        )
    return 0


def child_command(
    experiment: str | Path, overrides: Sequence[str], seed: int, run_dir: Path, log_every: int
) -> list[str]:
    """The ``trpo-tf train`` command line of one seed's child process."""
    command = [sys.executable, "-m", "trpo_tf", "train", str(experiment)]
    for override in overrides:
        command += ["--set", override]
    return command + [
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        "--log-every",
        str(log_every),
    ]


_STEPS = re.compile(rb"steps\s+([\d,]+)/([\d,]+)")
_TAIL_BYTES = 4096


def logged_steps(log: Path) -> int:
    """Env steps in the last progress line of a seed's log (0 before its first line)."""
    try:
        with open(log, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
    except OSError:
        return 0
    matches = _STEPS.findall(tail)
    return int(matches[-1][0].replace(b",", b"")) if matches else 0


class SeedsProgress:
    """One progress line for all seeds of ``--parallel``: steps, fps and ETA summed.

    Args:
        seeds: how many seeds run in all.
        steps_per_seed: env steps each seed trains.
        stream: where the lines go.
        every_s: seconds between lines.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        seeds: int,
        steps_per_seed: int,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seeds = seeds
        self.total = seeds * steps_per_seed
        self.steps_per_seed = steps_per_seed
        self.stream = stream if stream is not None else sys.stderr
        self.every_s = every_s
        self.clock = clock
        self.start = clock()
        self.last_line = self.start

    def line(self, steps: Mapping[int, int], done: int, running: int, now: float) -> str:
        trained = min(self.total, done * self.steps_per_seed + sum(steps.values()))
        elapsed = now - self.start
        fps = trained / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * trained / self.total if self.total else 100.0
        eta = _duration((self.total - trained) / fps) if fps > 0 else "--:--"
        waiting = self.seeds - done - running
        return (
            f"seeds {done} done, {running} running, {waiting} waiting | steps "
            f"{trained:,d}/{self.total:,d} ({percent:5.1f}%) | {fps:,.0f} fps | ETA {eta}"
        )

    def update(self, steps: Mapping[int, int], done: int, running: int) -> None:
        """Print a line when ``every_s`` has passed since the last one."""
        now = self.clock()
        if now - self.last_line < self.every_s:
            return
        self.last_line = now
        print(self.line(steps, done, running, now), file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def train_parallel(
    experiment: str | Path,
    overrides: Sequence[str],
    seeds: Sequence[int],
    parent: Path,
    processes: int,
    progress_every: int = 1,
    poll_s: float = 0.5,
    steps_per_seed: int = 0,
    quiet: bool = False,
    progress_s: float = 10.0,
) -> int:
    """Train the seeds in up to ``processes`` child processes; returns an exit status.

    Unless ``quiet``, a line every ``progress_s`` seconds sums the seeds' progress
    (read from the progress lines in their logs) against ``steps_per_seed`` each.
    """
    parent.mkdir(parents=True, exist_ok=True)
    pending = list(seeds)
    running: dict[int, tuple[subprocess.Popen, object]] = {}
    failed: list[int] = []
    done = 0
    progress = (
        None
        if quiet or steps_per_seed <= 0
        else SeedsProgress(len(seeds), steps_per_seed, every_s=progress_s)
    )
    try:
        while pending or running:
            while pending and len(running) < processes:
                seed = pending.pop(0)
                log = open(parent / f"seed_{seed}.log", "w")  # noqa: SIM115 - closed on exit
                command = child_command(
                    experiment, overrides, seed, seed_dir(parent, seed), progress_every
                )
                running[seed] = (
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT),
                    log,
                )
            for seed, (process, log) in list(running.items()):
                status = process.poll()
                if status is None:
                    continue
                log.close()
                del running[seed]
                outcome = _outcome(status, seed_dir(parent, seed))
                print(f"seed {seed}: {outcome}; log {parent / f'seed_{seed}.log'}", flush=True)
                if status != 0:
                    failed.append(seed)
                else:
                    done += 1
            if progress is not None and running:
                steps = {seed: logged_steps(parent / f"seed_{seed}.log") for seed in running}
                progress.update(steps, done, len(running))
            if running:
                time.sleep(poll_s)
    finally:
        for process, log in running.values():
            process.terminate()
            process.wait()
            log.close()
    return 1 if failed else 0


INTERRUPTED = 130
"""Exit status of ``trpo-tf train`` stopped by Ctrl-C (after saving a checkpoint)."""


def _outcome(status: int, run_dir: Path) -> str:
    """How one seed's child process ended, with what to do next."""
    if status == 0:
        return "done"
    if status in (INTERRUPTED, -signal.SIGINT):
        if CheckpointManager(run_dir / "checkpoints", keep=1).latest() is not None:
            return f"interrupted; continue it with: trpo-tf train --resume {run_dir}"
        return "interrupted before its first checkpoint"
    return f"FAILED (exit {status})"
