"""Cost of the compiled update at the speed benchmark's settings: trace, first call, steady.

For each env of ``benchmarks/speed.py`` (same batch, network, CG iterations, critic
epochs/minibatch), builds the TRPO update on random data of the real shapes and times

* trace: ``get_concrete_function`` (Python tracing of the graph),
* first call: graph instantiation (and XLA compilation with ``--jit``); with
  ``--beside-python``, while another thread runs Python (as the learner's worker
  thread does when it traces the value fit beside the policy step's first call),
* steady: median wall and CPU time of later calls,

for the policy step and the value fit separately, in a fresh process per setting::

    python benchmarks/update_profile.py --envs CartPole-v1 HalfCheetah-v5 --reps 3

Prints a markdown table (medians over the repetitions).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import SETTINGS  # noqa: E402 - sibling module, needs sys.path

BUSY_THREAD = "busy-python"


@contextlib.contextmanager
def _python_running_beside(enabled: bool) -> Iterator[None]:
    """While the block runs, another thread runs pure Python (if ``enabled``)."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    busy = threading.Thread(target=spin, name=BUSY_THREAD)
    if enabled:
        busy.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            busy.join()


def worker_result(command: list[str]) -> dict:
    """Runs a worker process (CPU only, one BLAS thread); the JSON on its last line."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def profile_parser(doc: str) -> argparse.ArgumentParser:
    """The options every profile script takes: ``--envs`` and ``--reps``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SETTINGS))
    parser.add_argument("--reps", type=int, default=3)
    return parser


def table_row(*cells: str) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


def table_header(*names: str) -> list[str]:
    """A markdown table's header and separator rows."""
    return [table_row(*names), table_row(*["---"] * len(names))]


def medians(runs: list[dict], keys: tuple[str, ...]) -> dict[str, float]:
    """The median of each of ``keys`` over ``runs``."""
    return {key: float(np.median([run[key] for run in runs])) for key in keys}


def _measure(env_id: str, jit: bool, calls: int, beside_python: bool = False) -> dict:
    import tensorflow as tf

    from trpo_tf.agent import Agent
    from trpo_tf.config import experiment_from_dict
    from trpo_tf.envs.factory import describe, make_env_fn
    from trpo_tf.learner import build_update
    from trpo_tf.tf_runtime import configure_tensorflow

    s = SETTINGS[env_id]
    config = experiment_from_dict(
        {
            "env": {"id": env_id, "n_envs": s["n_envs"]},
            "value": {"epochs": s["critic_epochs"], "minibatch_size": s["minibatch"]},
            "trainer": {
                "steps_per_iteration": s["n_steps"] * s["n_envs"],
                "max_kl": s["max_kl"],
                "cg_iters": s["cg_iters"],
                "cg_damping": s["cg_damping"],
                "jit_compile": jit,
            },
        }
    )
    configure_tensorflow(config.trainer.threads, config.trainer.graph_optimizer)
    spec = describe(env_id, make_env_fn(env_id, {}))
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    batch = config.trainer.steps_per_iteration
    update = build_update(config, agent, batch, spec.observation_dim)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(batch, spec.observation_dim)).astype(np.float32)
    distribution = agent.policy.distribution(agent.policy.dist_params(obs))
    actions = distribution.sample(seed=3)
    behavior_log_prob = distribution.log_prob(actions).numpy()
    advantages = rng.normal(size=batch).astype(np.float32)
    targets = rng.normal(size=batch).astype(np.float32)
    result = {}
    for name, function, args in (
        ("policy", update.policy_update, (obs, actions, behavior_log_prob, advantages)),
        ("value", update.value_fit, (obs, targets, tf.constant(config.value.epochs))),
    ):
        start = time.perf_counter()
        function.get_concrete_function(*args)
        traced = time.perf_counter()
        with _python_running_beside(beside_python):
            function(*args)
        first = time.perf_counter()
        walls, cpus = [], []
        for _ in range(calls):
            wall, cpu = time.perf_counter(), time.process_time()
            function(*args)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        result[name] = {
            "trace_s": traced - start,
            "first_call_s": first - traced,
            "steady_ms": 1e3 * float(np.median(walls)),
            "steady_cpu_ms": 1e3 * float(np.median(cpus)),
        }
    return result


def main() -> int:
    parser = profile_parser(__doc__)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--jit", action="store_true", help="also time XLA-compiled updates")
    parser.add_argument(
        "--beside-python",
        action="store_true",
        help="time each first call while another thread runs pure Python",
    )
    parser.add_argument("--worker", nargs=2, metavar=("ENV", "JIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = _measure(args.worker[0], args.worker[1] == "1", args.calls, args.beside_python)
        print(json.dumps(result))
        return 0
    rows = table_header(
        "env", "XLA", "part", "trace (s)", "first call (s)", "steady wall (ms)", "steady CPU (ms)"
    )
    for env_id in args.envs:
        for jit in (False, True) if args.jit else (False,):
            runs = [
                worker_result(
                    [sys.executable, __file__, "--worker", env_id, str(int(jit))]
                    + ["--calls", str(args.calls)]
                    + (["--beside-python"] if args.beside_python else [])
                )
                for _ in range(args.reps)
            ]
            for part in ("policy", "value"):
                med = medians(
                    [run[part] for run in runs],
                    ("trace_s", "first_call_s", "steady_ms", "steady_cpu_ms"),
                )
                seconds = [f"{med[key]:.2f}" for key in ("trace_s", "first_call_s")]
                ms = [f"{med[key]:.1f}" for key in ("steady_ms", "steady_cpu_ms")]
                rows.append(table_row(env_id, "yes" if jit else "no", part, *seconds, *ms))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
