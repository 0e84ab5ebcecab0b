"""The value fit run inline, or in a background thread beside the next rollout."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from trpo_tf.trainer import TrpoUpdate


class ValueFitter:
    """Runs the value fit inline, or in a background thread during the next rollout.

    The fit of iteration k changes only φ; the rollout of iteration k + 1 needs
    only θ (through the numpy actor) and V_φ is first read after that rollout. So
    overlapping the two is exact: :meth:`wait` is called before V is used, before
    synchronous checkpoints and at the end. TensorFlow releases the GIL while it
    computes, so the fit runs on another core beside the rollout (on two vCPUs a 100k
    CartPole run: 5.9 s against 6.7 s with the fit inline, docs/benchmarks/speed.md).
    :meth:`then` queues more work behind the fit (a checkpoint write);
    :meth:`prepare` builds the compiled fit ahead of the first one.

    One worker thread, started on first use, runs the queued tasks in order
    (handing a task to it costs ~15 µs; starting a thread per fit cost ~1 ms).
    """

    def __init__(self, update: TrpoUpdate, overlap: bool) -> None:
        self.update = update
        self.overlap = overlap
        self._tasks: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pending = False  # fits or writes queued since the last wait()

    def prepare(self) -> None:
        """Build the compiled fit in the background (nothing inline).

        It changes no state, so :meth:`wait` does not wait for it; the first fit
        queues behind it.
        """
        if self.overlap:
            self._submit(self.update.prepare_value_fit)

    def launch(self, *inputs: Any, check: Callable[[], Any] | None = None) -> None:
        """Queue V's fit on ``inputs`` (``observations, targets``, or the sequences of a
        recurrent V: ``TrpoUpdate.value_update``), then ``check`` (in the same task)."""
        self.wait()

        def fit() -> None:
            self.update.value_update(*inputs)
            if check is not None:
                check()

        self.then(fit)

    def then(self, task: Callable[[], Any]) -> None:
        """Run ``task`` after the queued work, in the background when overlapping."""
        if not self.overlap:
            task()
            return
        self._pending = True
        self._submit(task)

    def _submit(self, task: Callable[[], Any]) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="value-fit", daemon=True)
            self._worker.start()
        self._tasks.put(task)

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                if self._error is None:  # after a failure, skip the rest until wait()
                    task()
            except BaseException as error:  # noqa: BLE001 - re-raised in wait()
                self._error = error
            finally:
                self._tasks.task_done()
        self._tasks.task_done()

    def wait(self) -> None:
        """Block until the queued fits and writes are done; re-raise a worker's error."""
        if self._worker is not None and self._pending:
            self._tasks.join()
            self._pending = False
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Finish the queued work and stop the worker thread; an error stays for :meth:`wait`."""
        if self._worker is not None:
            self._tasks.put(None)
            self._worker.join()
            self._worker = None
