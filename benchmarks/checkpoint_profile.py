"""Cost of one checkpoint write of a run's TensorFlow state: eager against compiled.

Builds what ``train()`` checkpoints (policy and value networks, the head, the value
fit's Adam with its moments, the update's random generator) for each env of
``benchmarks/speed.py``, with the heap frozen as during training, and times

* eager: ``tf.train.Checkpoint.write``,
* compiled: :class:`trpo_tf.checkpoint_write.CheckpointWriter` (the run's writer),

each alone and while another thread runs pure Python (as the rollout does while
the value fit's thread writes a periodic checkpoint); the first write separately,
in a fresh process per writer and repetition::

    python benchmarks/checkpoint_profile.py --envs CartPole-v1 Pendulum-v1 --reps 3

Prints a markdown table (medians over the repetitions).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import SETTINGS, _policy_settings  # noqa: E402 - sibling modules
from update_profile import (  # noqa: E402
    _python_running_beside,
    medians,
    profile_parser,
    table_header,
    table_row,
    worker_result,
)

WRITERS = ("eager", "compiled")
KEYS = ("first_ms", "alone_ms", "beside_python_ms")


def _measure(env_id: str, writer: str, writes: int) -> dict:
    import tensorflow as tf

    from trpo_tf.agent import Agent
    from trpo_tf.checkpoint_write import CheckpointWriter
    from trpo_tf.config import experiment_from_dict
    from trpo_tf.envs.factory import describe, make_env_fn
    from trpo_tf.heap import frozen_heap
    from trpo_tf.learner import build_update
    from trpo_tf.tf_runtime import configure_tensorflow
    from trpo_tf.train import tf_state

    s = SETTINGS[env_id]
    batch = s["n_steps"] * s["n_envs"]
    config = experiment_from_dict(
        {
            "env": {"id": env_id, "n_envs": s["n_envs"]},
            "trainer": {"steps_per_iteration": batch},
            "policy": _policy_settings(s),
        }
    )
    configure_tensorflow(config.trainer.threads, config.trainer.graph_optimizer)
    spec = describe(env_id, make_env_fn(env_id, {}))
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    update = build_update(config, agent, batch, spec.observation_dim)
    update.value_optimizer.build(agent.value_network.trainable_variables)
    state = tf_state(agent, update, None)
    checkpoint = tf.train.Checkpoint(**state)
    write = checkpoint.write if writer == "eager" else CheckpointWriter(checkpoint).write
    times = []
    with frozen_heap(), tempfile.TemporaryDirectory() as tmp:
        for beside in (False, True):
            with _python_running_beside(beside):
                for i in range(writes + (0 if beside else 1)):
                    start = time.perf_counter()
                    write(str(Path(tmp) / f"{beside}-{i}" / "tf"))
                    times.append((beside, time.perf_counter() - start))
    alone = [t for beside, t in times if not beside]
    result = {
        "first_ms": 1e3 * alone[0],
        "alone_ms": 1e3 * float(np.median(alone[1:])),
        "beside_python_ms": 1e3 * float(np.median([t for b, t in times if b])),
    }
    return result


def main() -> int:
    parser = profile_parser(__doc__)
    parser.add_argument("--writes", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("ENV", "WRITER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_measure(args.worker[0], args.worker[1], args.writes)))
        return 0
    rows = table_header(
        "env", "writer", "first write (ms)", "later writes alone (ms)", "beside Python (ms)"
    )
    for env_id in args.envs:
        runs: dict[str, list[dict]] = {name: [] for name in WRITERS}
        for rep in range(args.reps):
            for name in WRITERS if rep % 2 == 0 else WRITERS[::-1]:
                command = [sys.executable, __file__, "--worker", env_id, name]
                runs[name].append(worker_result(command + ["--writes", str(args.writes)]))
        for name in WRITERS:
            med = medians(runs[name], KEYS)
            rows.append(table_row(env_id, name, *(f"{med[key]:.1f}" for key in KEYS)))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
