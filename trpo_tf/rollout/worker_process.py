"""The body of a rollout worker process and its protocol with the learner.

:class:`~trpo_tf.rollout.process_pool.ProcessWorkerPool` starts :func:`process_main`
in each worker process. Like :mod:`~trpo_tf.rollout.async_worker`, this module must
never import TensorFlow.
"""

from __future__ import annotations

import traceback
from typing import Any

from trpo_tf.errors import TrpoTfError
from trpo_tf.rollout.async_worker import RolloutWorker
from trpo_tf.rollout.numpy_policy import PolicySnapshot
from trpo_tf.rollout.segment import WorkerSpec


def process_main(
    spec: WorkerSpec,
    index: int,
    incarnation: int,
    snapshot: PolicySnapshot,
    commands: Any,
    results: Any,
) -> None:
    """Body of a worker process (multiprocessing "spawn"/"forkserver" context).

    Protocol. From the learner, on the ``commands`` queue: ``("policy",
    snapshot)``, ``("credit", n)`` — may start ``n`` more segments — and
    ``("stop", None)``. To the learner, on the ``results`` connection:
    ``("ready", info)``, then ``("segment", Segment)`` per credit, and
    ``("env_error", line)`` whenever an env fails and is rebuilt; a user error
    (bad env output, an env that keeps failing, unknown env) is sent as
    ``("error", (type name, message))`` before exiting. The worker drains all
    pending commands before each segment, so a segment uses the newest snapshot
    that had arrived when it started.
    """
    import multiprocessing
    import queue
    import signal

    # The learner decides when workers stop (it checkpoints first on SIGTERM, SIGHUP or
    # Ctrl-C): a signal sent to the whole process group must not kill them mid-segment.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    try:
        worker = RolloutWorker(
            spec,
            index,
            incarnation,
            snapshot,
            report=lambda line: results.send(("env_error", line)),
        )
        results.send(("ready", worker.info()))
        credits = 0
        while True:
            try:
                kind, payload = commands.get(block=credits == 0, timeout=1.0)
            except queue.Empty:
                if credits == 0 and parent is not None and not parent.is_alive():
                    return  # the learner is gone
                if credits == 0:
                    continue
                kind, payload = "run", None
            if kind == "stop":
                worker.close()
                return
            if kind == "policy":
                worker.set_policy(payload)
            elif kind == "credit":
                credits += int(payload)
            if kind != "run":
                continue  # drain every pending command before stepping
            results.send(("segment", worker.run_segment()))
            credits -= 1
    except TrpoTfError as error:
        results.send(("error", (type(error).__name__, str(error))))
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        return
    except BaseException:
        results.send(("error", ("RuntimeError", traceback.format_exc(limit=5))))
        raise
