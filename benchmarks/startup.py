"""Where ``trpo-tf train`` spends the time that is not training: start-up and finish.

Two measurements, each repeated (medians reported; the machine is shared, so single
runs are noisy):

* whole process: the wall time of the real command ``trpo-tf train EXPERIMENT`` as
  ``/usr/bin/time`` sees it, next to ``python -c "import tensorflow"`` run the same
  way, alternating;
* phases: the same run in one process with each phase timed (exclusive: a phase
  nested in another is not counted twice): the CLI's imports, loading the config,
  the env check before TensorFlow, ``import tensorflow``, the imports of Keras,
  TensorFlow Probability and the rest of the training code (and whether matplotlib or
  wandb were imported on the way), building env and networks, opening the run
  directory and trackers, the first iteration (tracing the compiled functions), the
  other iterations, evaluations, checkpoints, the policy save, the SavedModel
  export, the learning-curve plot and closing.

Usage::

    python benchmarks/startup.py [EXPERIMENT] [--repeats 5] [--report docs/benchmarks/startup.md]

EXPERIMENT defaults to ``cartpole`` (the README's first command).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

T0 = time.perf_counter()
REPO = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"


# -- child: one instrumented run ------------------------------------------------------


class Phases:
    """Exclusive wall time per phase name (nested phases are subtracted from the outer)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.order: list[str] = []
        self.stack: list[list[float]] = []  # [start, time spent in nested phases]

    def add(self, name: str, seconds: float) -> None:
        if name not in self.seconds:
            self.order.append(name)
        self.seconds[name] += seconds

    def time(self, name: str, function, *args, **kwargs):
        start = time.perf_counter()
        self.stack.append([start, 0.0])
        try:
            return function(*args, **kwargs)
        finally:
            _, nested = self.stack.pop()
            total = time.perf_counter() - start
            self.add(name, total - nested)
            if self.stack:
                self.stack[-1][1] += total

    def wrap(self, owner, attribute: str, name) -> None:
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            label = name(*args, **kwargs) if callable(name) else name
            return self.time(label, original, *args, **kwargs)

        setattr(owner, attribute, timed)


def child(experiment: str, run_dir: Path) -> dict:
    phases = Phases()
    start = time.perf_counter()
    phases.add("python start-up (until this script runs)", start - T0 + _interpreter_start())
    mark = time.perf_counter()

    def step(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases.add(name, now - mark)
        mark = now

    import trpo_tf.cli as cli  # noqa: F401

    step("import trpo_tf.cli")
    from trpo_tf.catalog import resolve
    from trpo_tf.config import load_experiment

    config = load_experiment(resolve(experiment), [])
    step("load the experiment")
    from trpo_tf.commands.train import check_before_tensorflow

    check_before_tensorflow(config)
    step("check packages and env (before TensorFlow)")
    from trpo_tf.tf_runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    step("import tensorflow (and list devices)")
    import keras  # noqa: F401

    step("import keras")
    import tensorflow_probability  # noqa: F401

    step("import tensorflow_probability")
    import trpo_tf.train
    from trpo_tf.run import training

    step("import the rest of trpo_tf's training code")
    imported = {
        name: ("deferred" if type(sys.modules[name]).__name__ == "_DeferredModule" else "yes")
        if name in sys.modules
        else "no"
        for name in ("matplotlib", "matplotlib.pyplot", "setuptools", "wandb")
    }

    iterations = [0]

    def iteration_name(*_args, **_kwargs) -> str:
        iterations[0] += 1
        return (
            "first iteration (traces the compiled functions)"
            if iterations[0] == 1
            else ("other iterations (training)")
        )

    from trpo_tf import atomic
    from trpo_tf.tracking import plots

    phases.wrap(training.TrainingRun, "__init__", "build: env, networks, learner, runner")
    phases.wrap(training, "make_env_fn", "build: envs")
    phases.wrap(training, "describe", "build: envs")
    phases.wrap(training.TrainingRun, "open", "open run directory, start trackers")
    phases.wrap(training.TrainingRun, "iterate", iteration_name)
    phases.wrap(training.TrainingRun, "_evaluate", "evaluations")
    phases.wrap(training.TrainingRun, "checkpoint", "checkpoints")
    phases.wrap(
        atomic,
        "build_dir",
        lambda final, fill, operation="": f"write {operation or 'a directory'} (atomic.build_dir)",
    )
    phases.wrap(training, "export_savedmodel", "export SavedModel")
    phases.wrap(plots, "plot_learning_curve", "learning-curve plot")
    phases.wrap(training.TrainingRun, "close", "close (progress, threads, envs, files)")
    finish_start = [0.0]
    original_finish = training.TrainingRun.finish

    def finish(self):
        finish_start[0] = time.perf_counter()
        return phases.time("finish: last value fit, summary", original_finish, self)

    training.TrainingRun.finish = finish
    train_start = time.perf_counter()
    result = trpo_tf.train.train(config, run_dir, quiet=True)
    total_train = time.perf_counter() - train_start
    accounted = sum(
        seconds
        for name, seconds in phases.seconds.items()
        if name not in ("python start-up (until this script runs)",)
        and not name.startswith(("import", "load", "check"))
    )
    phases.add("train(): the rest (locking, pre-checks, summary)", total_train - accounted)
    print(f"done: {result.env_steps} env steps", file=sys.stderr)
    return {
        "phases": {name: phases.seconds[name] for name in phases.order},
        "imported": imported,
        "process_until_exit": time.perf_counter() - T0 + _interpreter_start(),
    }


def _interpreter_start() -> float:
    """Seconds from this process's start to this module's first line (Linux /proc)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as file:
            started = int(file.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        return max(0.0, (uptime - started) - (time.perf_counter() - T0))
    except (OSError, ValueError, IndexError):
        return 0.0


# -- parent: whole-process timings and the report -------------------------------------


def _timed(command: list[str], cwd: Path) -> float:
    if Path(TIME).exists():
        out = subprocess.run(
            [TIME, "-f", "%e", *command], cwd=cwd, capture_output=True, text=True, check=True
        )
        return float(out.stderr.strip().splitlines()[-1])
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - start


def _trpo_tf() -> list[str]:
    script = Path(sys.executable).with_name("trpo-tf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trpo_tf"]


def measure(experiment: str, repeats: int) -> dict:
    whole, tf_import, children = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for index in range(repeats):
            tf_import.append(_timed([sys.executable, "-c", "import tensorflow"], work))
            run_dir = work / f"cli-{index}"
            whole.append(
                _timed(
                    [*_trpo_tf(), "train", experiment, "--run-dir", str(run_dir), "--quiet"], work
                )
            )
            summary = json.loads((run_dir / "summary.json").read_text())
            phases_dir = work / f"phases-{index}"
            out = subprocess.run(
                [sys.executable, __file__, experiment, "--child", str(phases_dir)],
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
            )
            report = json.loads(out.stdout.strip().splitlines()[-1])
            report["summary"] = summary
            children.append(report)
            print(
                f"repeat {index + 1}/{repeats}: whole {whole[-1]:.2f} s, import tensorflow "
                f"{tf_import[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            shutil.rmtree(run_dir, ignore_errors=True)
            shutil.rmtree(phases_dir, ignore_errors=True)
    names = list(children[0]["phases"])
    return {
        "experiment": experiment,
        "repeats": repeats,
        "whole_s": whole,
        "import_tensorflow_s": tf_import,
        "phases_s": {n: [c["phases"].get(n, 0.0) for c in children] for n in names},
        "imported": children[0]["imported"],
        "train_time_s": [c["summary"]["train_time_s"] for c in children],
    }


def _median(values: list[float]) -> float:
    return statistics.median(values)


def format_report(result: dict) -> str:
    phases = {name: _median(values) for name, values in result["phases_s"].items()}
    whole = _median(result["whole_s"])
    tf_import = _median(result["import_tensorflow_s"])
    iterations = phases.get("other iterations (training)", 0.0)
    before_first = 0.0
    for name, seconds in phases.items():
        if name.startswith("first iteration"):
            break
        before_first += seconds
    tf_phase = phases.get("import tensorflow (and list devices)", 0.0)
    lines = [
        "# Start-up and finish of `trpo-tf train " + result["experiment"] + "`",
        "",
        "Generated by `python benchmarks/startup.py "
        + result["experiment"]
        + f" --repeats {result['repeats']}`"
        + f" on {platform.machine()} Linux, {os.cpu_count()} CPUs (shared with other work:"
        " medians), Python " + platform.python_version() + ".",
        "",
        "## Whole process (`/usr/bin/time`, wall seconds)",
        "",
        "| what | median | all repeats |",
        "|---|---|---|",
        f"| `trpo-tf train {result['experiment']} --quiet` | {whole:.2f} | "
        + ", ".join(f"{v:.2f}" for v in result["whole_s"])
        + " |",
        f'| `python -c "import tensorflow"` | {tf_import:.2f} | '
        + ", ".join(f"{v:.2f}" for v in result["import_tensorflow_s"])
        + " |",
        f"| training iterations after the first (phases below) | {iterations:.2f} | |",
        f"| **whole − import tensorflow − those iterations** | **{whole - tf_import - iterations:.2f}** | |",
        "",
        f"Start-up to the first iteration: {before_first:.2f} s, of which "
        f"{before_first - tf_phase:.2f} s beyond `import tensorflow`.",
        "",
        "## Phases (one process, exclusive seconds, median)",
        "",
        "| phase | median | share of the process |",
        "|---|---|---|",
    ]
    total = sum(phases.values())
    for name, seconds in phases.items():
        lines.append(f"| {name} | {seconds:.3f} | {100 * seconds / total:.1f}% |")
    lines += [
        "",
        "Imported on the way to training (deferred: in sys.modules, not executed): "
        + ", ".join(f"{name}: {state}" for name, state in result["imported"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", nargs="?", default="cartpole")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--report", help="write the Markdown report here")
    parser.add_argument("--json", help="write the raw timings here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.experiment, Path(args.child))))
        return
    result = measure(args.experiment, args.repeats)
    text = format_report(result)
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
