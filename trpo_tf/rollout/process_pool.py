"""Rollout worker processes for :class:`~trpo_tf.rollout.async_runner.AsyncRunner`.

One process per worker (forkserver where available), each with a command queue in
and a result pipe out; the learner waits on pipes and process sentinels together,
so a worker that dies is noticed at once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import wait as wait_for
from typing import Any

from trpo_tf.errors import RolloutWorkerError
from trpo_tf.rollout.numpy_policy import PolicySnapshot
from trpo_tf.rollout.segment import WorkerSpec
from trpo_tf.rollout.worker_process import process_main

Event = tuple[int, str, Any]
"""``(worker, kind, payload)``; kind is ready | segment | error | dead."""


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start processes without re-running the user's ``__main__`` in them.

    spawn/forkserver children normally import the parent's main script first;
    a script that imports TensorFlow at the top would load it into every worker
    (seconds and hundreds of MB each). Workers need nothing from ``__main__``.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {
        name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def exit_reason(exitcode: int | None) -> str:
    """``"exit code 1"``, or ``"killed by SIGKILL"`` for a negative code."""
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


class ProcessWorkerPool:
    """Worker processes: a command queue in, a result pipe out, per worker.

    The learner never blocks on a send (queues have a feeder thread), so it cannot
    deadlock with a worker that is blocked sending a large segment. A dead worker
    only takes its own pipe and queue with it.
    """

    def __init__(self, spec: WorkerSpec, start_method: str | None = None) -> None:
        methods = multiprocessing.get_all_start_methods()
        method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        if method == "fork":
            raise ValueError("fork would copy the learner's TensorFlow runtime; use spawn")
        self.context = multiprocessing.get_context(method)
        if method == "forkserver":
            # The server imports the worker module once (never the user's __main__)
            # and outlives a SIGTERM or SIGHUP sent to the whole process group.
            self.context.set_forkserver_preload(
                ["trpo_tf.rollout.forkserver_signals", "trpo_tf.rollout.async_worker"]
            )
        self.spec = spec
        self.processes: dict[int, Any] = {}
        self._commands: dict[int, Any] = {}
        self._results: dict[int, Any] = {}
        self._incarnation: dict[int, int] = {}

    def start(self, index: int, snapshot: PolicySnapshot) -> None:
        incarnation = self._incarnation.get(index, -1) + 1
        self._incarnation[index] = incarnation
        commands = self.context.Queue()
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=process_main,
            args=(self.spec, index, incarnation, snapshot, commands, writer),
            name=f"trpo-tf-rollout-{index}",
            daemon=True,
        )
        for attempt in range(2):
            try:
                with _main_module_hidden():
                    process.start()
                break
            except OSError as error:
                # A killed forkserver may still be exiting; the next start launches a
                # new one once it is gone.
                if attempt == 0:
                    time.sleep(1.0)
                    continue
                commands.close()
                reader.close()
                writer.close()
                raise RolloutWorkerError(
                    f"could not start rollout worker {index} ({type(error).__name__}: "
                    f"{error}); its process server is gone: try runner.kind: sync"
                ) from error
        writer.close()  # only the child may write: its death then reads as EOF
        self.processes[index], self._commands[index], self._results[index] = (
            process,
            commands,
            reader,
        )

    def send_policy(self, index: int, snapshot: PolicySnapshot) -> None:
        self._commands[index].put(("policy", snapshot))

    def grant(self, index: int) -> None:
        self._commands[index].put(("credit", 1))

    def wait(self, timeout: float) -> list[Event]:
        """Events from any worker within ``timeout`` seconds (possibly none)."""
        by_handle: dict[Any, int] = {}
        for index, reader in self._results.items():
            by_handle[reader] = index
            by_handle[self.processes[index].sentinel] = index
        events: list[Event] = []
        dead: set[int] = set()
        for handle in wait_for(list(by_handle), timeout):
            index = by_handle[handle]
            if index in dead:
                continue
            reader = self._results[index]
            try:
                while reader.poll():
                    kind, payload = reader.recv()
                    events.append((index, kind, payload))
            except (EOFError, OSError):
                pass
            process = self.processes[index]
            if handle is not reader or not process.is_alive():
                process.join(timeout=1.0)
                if not process.is_alive():
                    dead.add(index)
                    events.append((index, "dead", exit_reason(process.exitcode)))
        return events

    def _discard(self, index: int) -> None:
        process = self.processes.pop(index)
        if process.is_alive():
            process.kill()
        process.join(timeout=5.0)
        self._results.pop(index).close()
        commands = self._commands.pop(index)
        commands.cancel_join_thread()  # nobody will read what is still queued
        commands.close()

    def restart(self, index: int, snapshot: PolicySnapshot) -> None:
        self._discard(index)
        self.start(index, snapshot)

    def close(self) -> None:
        for commands in self._commands.values():
            with contextlib.suppress(Exception):
                commands.put(("stop", None))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(p.is_alive() for p in self.processes.values()):
            # A worker blocked sending a segment reads its stop only once that is taken.
            for reader in list(self._results.values()):
                with contextlib.suppress(EOFError, OSError):
                    while reader.poll(0.01):
                        reader.recv()
        for index in list(self.processes):
            self._discard(index)
